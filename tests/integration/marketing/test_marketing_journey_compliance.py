"""Journeys under the campaigns' pre-send rules, on SQLite and PostgreSQL: a journey whose
send steps fail a compliance check is refused at save (422 naming each); one that fails at
run time (its DKIM key removed) is paused, audited, and sends nothing until resumed once
fixed; the complaint breaker pauses a journey as it does a campaign, and the claim gate
holds its queued messages; a send step's template version is pinned when saved; a send
step's message, its mkt_sends row and the pointer past it commit together."""

import email
import email.policy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import NO_QUIET, Shop, shop
from tests.integration.marketing.test_marketing_journeys import FROM, journey, make_due

from sealmail.ids import new_id
from sealmail.marketing import journeys as journeys_module
from sealmail.marketing.tables import mkt_enrollments, mkt_journeys, mkt_sends
from sealmail.store.tables import (
    audit_log,
    events,
    idempotency_keys,
    messages,
    recipients,
    tenant_identities,
)

__all__ = ["pipeline", "shop"]

SEND = {"send": {"template": "promo", "purpose": "treatment", "from": FROM, **NO_QUIET}}
VISIT = {"type": "api_event", "event": "visit"}


def enrol(shop: Shop, address: str, key: str = "k1") -> None:
    r = shop.client.post(
        "/v1/marketing/journeys/events", json={"event": "visit", "email": address, "key": key}, headers=shop.h
    )
    assert r.status_code == 200, r.text


def dkim(shop: Shop, active: bool) -> None:
    with shop.p.services.engine.begin() as conn:
        conn.execute(
            sa.update(tenant_identities)
            .where(tenant_identities.c.tenant_id == shop.p.tenant.id, tenant_identities.c.kind == "dkim")
            .values(active=active)
        )


def count(shop: Shop, table: sa.Table) -> int:
    with shop.p.services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def audited(shop: Shop, action: str) -> list[Any]:
    with shop.p.services.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_log.c.target, audit_log.c.actor, audit_log.c.details)
                .where(audit_log.c.action == action)
                .order_by(audit_log.c.seq)
            ).all()
        )


def enrollment(shop: Shop, journey_id: str) -> dict[str, Any]:
    [e] = shop.client.get(f"/v1/marketing/journeys/{journey_id}/enrollments", headers=shop.h).json()["data"]
    return dict(e)


def test_a_journey_failing_the_pre_send_checks_is_refused_naming_each_step(shop: Shop) -> None:
    bare = {
        "name": "bare",
        "subject": "News",
        "text": "News.",
        "html": '<p><a href="https://x.example">x</a></p>',
    }
    assert shop.client.post("/v1/templates", json=bare, headers=shop.h).status_code == 201
    steps = [
        {"send": {"template": "bare", "purpose": "marketing", "from": "news@unverified.example"}},
        {"wait": {"hours": 1}},
        SEND,  # passes: the promo template has the footer, clinic.example is signed
        {"send": {"template": "bare", "purpose": "fundraising", "from": FROM}},
    ]
    r = journey(shop, "bad", VISIT, steps)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = sorted({e["field"] for e in r.json()["errors"]})
    assert fields == [
        "steps[0].compliance.dkim_alignment",
        "steps[0].compliance.postal_address",
        "steps[0].compliance.unsubscribe_link",
        "steps[3].compliance.postal_address",
        "steps[3].compliance.unsubscribe_link",
    ]
    assert "dkim_alignment" in r.json()["detail"]
    assert shop.client.get("/v1/marketing/journeys", headers=shop.h).json()["data"] == []
    # A send step without a from address is a 422 of the grammar, not a 500.
    r = journey(shop, "bad", VISIT, [{"send": {"template": "promo", "purpose": "treatment"}}])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "steps[0].send"
    r = journey(shop, "bad", VISIT, [{"send": {**SEND["send"], "version": "latest"}}])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "steps[0].send.version"
    r = journey(shop, "bad", VISIT, [{"send": {**SEND["send"], "version": 9}}])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "steps[0].send.template"


def test_a_journey_whose_dkim_key_is_removed_is_paused_at_run_time_and_sends_after_resume(shop: Shop) -> None:
    shop.contact("ann@example.net")
    saved = journey(shop, "after-visit", VISIT, [SEND, {"wait": {"hours": 1}}])
    assert saved.status_code == 201, saved.text
    jid = saved.json()["id"]
    enrol(shop, "ann@example.net")
    dkim(shop, active=False)
    journeys = shop.p.services.marketing.journeys
    assert journeys.run_due("j1") == 1
    held = enrollment(shop, jid)
    assert (held["state"], held["step"], held["last_reason"]) == ("active", 0, "journey_paused")
    assert count(shop, mkt_sends) == 0 and count(shop, messages) == 0  # nothing queued
    [(target, actor, details)] = audited(shop, "mkt_journey:paused")
    assert (target, actor, details["reason"], details["step"]) == (
        jid,
        "system:journey-runner",
        "compliance",
        0,
    )
    assert [f["check"] for f in details["failed"]] == ["dkim_alignment"]
    got = shop.client.get("/v1/marketing/journeys", headers=shop.h).json()["data"]
    assert got[0]["paused"] == "compliance"
    # Still failing: resuming is refused with the check named, and it stays paused.
    r = shop.client.post(f"/v1/marketing/journeys/{jid}/resume", headers=shop.h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "steps[0].compliance.dkim_alignment"
    make_due(shop)
    assert journeys.run_due("j1") == 1 and count(shop, mkt_sends) == 0
    assert len(audited(shop, "mkt_journey:paused")) == 1  # paused once, not once a run
    dkim(shop, active=True)
    r = shop.client.post(f"/v1/marketing/journeys/{jid}/resume", headers=shop.h)
    assert r.status_code == 200 and r.json()["paused"] is None, r.text
    assert shop.client.post(f"/v1/marketing/journeys/{jid}/resume", headers=shop.h).status_code == 409
    [(_, _, resumed)] = audited(shop, "mkt_journey:resumed")
    assert resumed == {"was": "compliance"}
    assert journeys.run_due("j1") == 2  # due at once: the send, then the wait
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["ann@example.net"]


def test_a_paused_journeys_queued_messages_are_held_at_the_claim(shop: Shop) -> None:
    shop.contact("bob@example.net")
    jid = journey(shop, "hold", VISIT, [SEND]).json()["id"]
    enrol(shop, "bob@example.net")
    journeys = shop.p.services.marketing.journeys
    assert journeys.run_due("j1") == 1 and count(shop, mkt_sends) == 1  # queued, not yet claimed
    paused = shop.client.post(f"/v1/marketing/journeys/{jid}/pause", headers=shop.h)
    assert paused.status_code == 200 and paused.json()["paused"] == "user"
    assert shop.client.post(f"/v1/marketing/journeys/{jid}/pause", headers=shop.h).status_code == 409
    shop.p.run_worker()
    with shop.p.services.engine.connect() as conn:
        reasons = conn.execute(sa.select(recipients.c.last_reason)).scalars().all()
    assert reasons == ["journey_paused"] and shop.received() == []
    other = shop.client.post("/v1/marketing/journeys/jny_nope/pause", headers=shop.h)
    assert other.status_code == 404


def test_the_complaint_breaker_pauses_a_journey_and_a_resume_opens_a_new_window(shop: Shop) -> None:
    services = shop.p.services
    tune = {"marketing": {"complaint_rate": 0.3, "complaint_min_sent": 2}}
    assert shop.client.patch("/v1/tenant/settings", json=tune, headers=shop.h).status_code == 200
    for i in range(4):
        shop.contact(f"c{i}@example.net")
    jid = journey(shop, "noisy", VISIT, [SEND, {"wait": {"hours": 1}}, SEND]).json()["id"]
    for i in range(4):
        enrol(shop, f"c{i}@example.net")
    journeys, breaker = services.marketing.journeys, services.marketing.breaker
    assert journeys.run_due("j1") == 8  # each: the first send and the wait
    with services.engine.begin() as conn:
        ids = sorted(conn.execute(sa.select(mkt_sends.c.message_id)).scalars())
        conn.execute(
            sa.update(mkt_sends)
            .where(mkt_sends.c.message_id.in_(ids[:2]))
            .values(state="sent", sent_at=datetime.now(UTC))
        )
        conn.execute(
            sa.insert(events).values(
                id=new_id("evt"), tenant_id=shop.p.tenant.id, message_id=ids[0], type="message.complained",
                seq=50, created_at=datetime.now(UTC), data={},
            )
        )  # fmt: skip
    assert breaker.sweep() == [jid]
    assert breaker.sweep() == []  # paused once
    [(target, actor, details)] = audited(shop, "mkt_journey:paused")
    assert (target, actor, details["reason"]) == (jid, "system:complaint-breaker", "complaint_rate")
    assert (details["complaints"], details["sent"]) == (1, 2)
    # Paused: the second sends are held at their step, nothing more is queued.
    make_due(shop)
    assert journeys.run_due("j1") == 4
    assert count(shop, mkt_sends) == 4
    with services.engine.connect() as conn:
        reasons = conn.execute(sa.select(mkt_enrollments.c.last_reason)).scalars().all()
    assert set(reasons) == {"journey_paused"}
    r = shop.client.post(f"/v1/marketing/journeys/{jid}/resume", headers=shop.h)
    assert r.status_code == 200, r.text
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(mkt_journeys.c.resumed_at)).scalar() is not None
    assert breaker.sweep() == []  # the complaint before the resume no longer counts
    assert journeys.run_due("j1") == 4  # the held second sends go now
    assert count(shop, mkt_sends) == 8


def test_a_send_step_keeps_the_template_version_it_was_saved_with(shop: Shop) -> None:
    shop.contact("pin@example.net")
    saved = journey(shop, "pinned", VISIT, [SEND])
    assert saved.status_code == 201, saved.text
    [listed] = shop.client.get("/v1/marketing/journeys", headers=shop.h).json()["data"]
    assert listed["definition"]["steps"][0]["send"]["version"] == 1
    edit = {
        "subject": "Changed {{ first_name }}",
        "text": "Changed.\n{{ postal_address }}\nTo unsubscribe, use the link.",
    }
    r = shop.client.put("/v1/templates/promo", json=edit, headers=shop.h)
    assert r.status_code == 200, r.text
    enrol(shop, "pin@example.net")
    assert shop.p.services.marketing.journeys.run_due("j1") == 1
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    raw = email.message_from_bytes(shop.p.sink.messages[0].data, policy=email.policy.default)
    assert raw["Subject"] == "Hello pin"  # version 1, not the edit
    # A journey saved after the edit pins the new version.
    again = journey(shop, "pinned", VISIT, [SEND]).json()["id"]
    got = shop.client.get("/v1/marketing/journeys", headers=shop.h).json()["data"]
    assert {j["id"]: j["definition"]["steps"][0]["send"]["version"] for j in got}[again] == 2


def test_a_send_step_is_one_transaction_so_a_crash_in_it_neither_loses_nor_repeats_it(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.contact("ann@example.net")
    jid = journey(shop, "once", VISIT, [SEND, {"wait": {"hours": 1}}]).json()["id"]
    enrol(shop, "ann@example.net")
    journeys = shop.p.services.marketing.journeys
    real = journeys_module.record_sends

    def dies_after_writing(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)  # the message and its mkt_sends row are written...
        raise RuntimeError("runner killed")  # ...and the runner dies before the commit

    monkeypatch.setattr(journeys_module, "record_sends", dies_after_writing)
    with pytest.raises(RuntimeError, match="runner killed"):
        journeys.run_due("j1")
    monkeypatch.undo()
    assert (count(shop, messages), count(shop, mkt_sends), count(shop, idempotency_keys)) == (0, 0, 0)
    assert enrollment(shop, jid)["step"] == 0
    assert journeys.run_due("j2") == 0  # still leased to the runner that died
    with shop.p.services.engine.begin() as conn:  # its lease runs out
        conn.execute(sa.update(mkt_enrollments).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert journeys.run_due("j2") == 2  # the send and the wait, once
    assert (count(shop, messages), count(shop, mkt_sends)) == (1, 1)
    assert enrollment(shop, jid)["step"] == 2
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["ann@example.net"]


def test_a_runner_that_lost_its_lease_writes_no_message(shop: Shop) -> None:
    shop.contact("bob@example.net")
    jid = journey(shop, "lease", VISIT, [SEND]).json()["id"]
    enrol(shop, "bob@example.net")
    journeys = shop.p.services.marketing.journeys
    claimed = journeys.claim("j1")
    with shop.p.services.engine.begin() as conn:  # j1 stalled; j2 took the enrollment over
        conn.execute(sa.update(mkt_enrollments).values(lease_owner="j2"))
    journeys.runner.advance("j1", claimed)
    assert (count(shop, messages), count(shop, mkt_sends)) == (0, 0)
    assert enrollment(shop, jid)["step"] == 0
