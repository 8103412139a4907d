"""Campaigns end to end on SQLite and PostgreSQL: the API queues, a real worker claims and
delivers to a loopback MX over TLS, and the claim gate decides each recipient.  The
property tested hard: a marketing message is never mailed without a valid authorization —
not when there is none, not when it expired, not when it was revoked between enqueue and
claim — and a fundraising opt-out stops the next claim."""

import email
import email.policy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.integration.delivery.test_worker import Pipeline, pipeline
from tests.integration.marketing.conftest import bearer

from sealmail.app import build_users
from sealmail.engagement.tokens import Kind
from sealmail.ids import new_id
from sealmail.intake.api.app import create_api
from sealmail.marketing.tables import mkt_authorizations, mkt_consent_current, mkt_sends
from sealmail.store.tables import audit_log, events, recipients
from sealmail.users.roles import Role

__all__ = ["pipeline"]
NO_QUIET = {"quiet_start": 0, "quiet_end": 0}


@dataclass
class Shop:
    p: Pipeline
    client: TestClient
    h: dict[str, str]

    def contact(self, address: str, **attributes: Any) -> str:
        body = {"email": address, "attributes": {"first_name": address.split("@")[0], **attributes}}
        r = self.client.post("/v1/marketing/contacts", json=body, headers=self.h)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def authorize(self, cid: str, **over: Any) -> None:
        now = datetime.now(UTC)
        body = {
            "information": "name and clinic visits",
            "disclosed_by": "Clinic",
            "disclosed_to": "Clinic marketing",
            "purpose_statement": "news about the diabetes program",
            "expires_at": (now + timedelta(days=90)).isoformat(),
            "signed_by": "Patient",
            "signed_at": (now - timedelta(minutes=1)).isoformat(),
            "statements": ["right_to_revoke", "conditioning", "redisclosure"],
            "document_sha256": hashlib.sha256(cid.encode()).hexdigest(),
            **over,
        }
        r = self.client.post(f"/v1/marketing/contacts/{cid}/authorizations", json=body, headers=self.h)
        assert r.status_code == 201, r.text

    def draft(self, purpose: str, segment: str = "everyone", **over: Any) -> dict[str, Any]:
        body = {
            "name": f"{purpose} mailing",
            "purpose": purpose,
            "segment": segment,
            "from": "Clinic <news@clinic.example>",
            "variants": [{"name": "a", "template": "promo"}],
            **NO_QUIET,
            **over,
        }
        created = self.client.post("/v1/marketing/campaigns", json=body, headers=self.h)
        assert created.status_code == 201, created.text
        return dict(created.json())

    def campaign(self, purpose: str, segment: str = "everyone", **over: Any) -> dict[str, Any]:
        cid = self.draft(purpose, segment, **over)["id"]
        sent = self.client.post(f"/v1/marketing/campaigns/{cid}/send", headers=self.h)
        assert sent.status_code == 202, sent.text
        assert sent.json()["status"] == "starting"
        self.p.services.marketing.runs.expand_due("test-expander")
        got = self.client.get(f"/v1/marketing/campaigns/{cid}", headers=self.h)
        assert got.json()["status"] == "sending", got.text
        return dict(got.json())

    def audience(self, campaign_id: str) -> dict[str, dict[str, Any]]:
        page = self.client.get(f"/v1/marketing/campaigns/{campaign_id}/audience", headers=self.h).json()[
            "data"
        ]
        with self.p.services.engine.connect() as conn:
            to = dict(conn.execute(sa.select(recipients.c.message_id, recipients.c.address)).all())
        return {to[s["message_id"]]: s for s in page}

    def received(self) -> list[str]:
        return sorted(a for m in self.p.sink.messages for a in m.rcpt_tos)


@pytest.fixture
def shop(pipeline: Pipeline) -> Iterator[Shop]:
    with TestClient(create_api(pipeline.services), raise_server_exceptions=False) as client:
        h = bearer(pipeline.tenant.api_key)
        for attr in (
            {"name": "first_name", "type": "text", "phi_class": "none"},
            {"name": "diagnosis", "type": "text", "phi_class": "clinical"},
        ):
            assert client.post("/v1/marketing/attributes", json=attr, headers=h).status_code == 201
        template = {
            "name": "promo",
            "subject": "Hello {{ first_name }}",
            "text": "Dear {{ first_name }}, news.\n--\n{{ postal_address }}\nTo unsubscribe, use the link.",
        }
        assert client.post("/v1/templates", json=template, headers=h).status_code == 201
        footer = {"marketing": {"postal_address": "1 Main St, Springfield, IL 62701"}}
        assert client.patch("/v1/tenant/settings", json=footer, headers=h).status_code == 200
        everyone = {"name": "everyone", "rule": {"attr": "first_name", "op": "exists"}}
        assert client.post("/v1/marketing/segments", json=everyone, headers=h).status_code == 201
        yield Shop(pipeline, client, h)


def test_marketing_mails_only_contacts_with_a_valid_authorization(shop: Shop) -> None:
    ok, _none, expired, consented = (
        shop.contact(f"{n}@example.net") for n in ("ok", "none", "expired", "consented")
    )
    shop.authorize(ok)
    shop.authorize(expired)
    shop.client.post(
        f"/v1/marketing/contacts/{consented}/consent",
        json={"purpose": "marketing", "action": "grant"},
        headers=shop.h,
    )
    past = datetime.now(UTC) - timedelta(minutes=1)
    with shop.p.services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_authorizations)
            .where(mkt_authorizations.c.contact_id == expired)
            .values(expires_at=past)
        )
    sent = shop.campaign("marketing")
    assert (sent["audience"], sent["queued"]) == (4, 4)
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["ok@example.net"]
    seen = shop.audience(sent["id"])
    assert {a: (s["state"], s["reason"]) for a, s in seen.items()} == {
        "ok@example.net": ("sent", None),
        "none@example.net": ("skipped", "no_authorization"),
        "expired@example.net": ("skipped", "authorization_expired"),
        "consented@example.net": ("skipped", "no_authorization"),
    }
    assert seen["ok@example.net"]["matched"] == ["attr:first_name:exists"]
    mid = seen["none@example.net"]["message_id"]
    [rcpt] = shop.p.message(mid)["recipients"]
    assert (rcpt["status"], rcpt["last_reason"]) == ("rejected", "no_authorization")
    assert shop.p.event_types(mid)[-1] == "message.rejected"
    raw = email.message_from_bytes(shop.p.sink.messages[0].data, policy=email.policy.default)
    assert raw["Subject"] == "Hello ok" and raw["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_revoke_between_enqueue_and_claim_is_honoured_at_the_claim(shop: Shop) -> None:
    cid = shop.contact("pat@example.net")
    shop.authorize(cid)
    sent = shop.campaign("marketing")
    assert sent["queued"] == 1
    revoke = {"purpose": "marketing", "action": "revoke", "source": "mailto"}
    assert (
        shop.client.post(f"/v1/marketing/contacts/{cid}/consent", json=revoke, headers=shop.h).status_code
        == 200
    )
    shop.p.run_worker()
    assert shop.received() == []
    [s] = shop.audience(sent["id"]).values()
    assert (s["state"], s["reason"]) == ("skipped", "authorization_revoked")


def test_a_fundraising_opt_out_by_one_click_stops_the_next_claim(shop: Shop) -> None:
    shop.contact("donor@example.net")
    first = shop.campaign("fundraising")
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    second = shop.campaign("fundraising")  # queued before the opt-out
    [s1] = shop.audience(first["id"]).values()
    rid = shop.p.message(s1["message_id"])["recipients"][0]["id"]
    services = shop.p.services
    assert services.engagement.unsubscribe(services.engagement.token(Kind.UNSUBSCRIBE, rid), "one_click")
    # The address is suppressed on broadcast too; take that away to prove the ledger alone stops it.
    services.suppressions.remove(
        shop.p.tenant.id, stream="broadcast", address="donor@example.net", actor="test"
    )
    shop.p.run_worker()
    assert shop.received() == ["donor@example.net"]
    [s2] = shop.audience(second["id"]).values()
    assert (s2["state"], s2["reason"]) == ("skipped", "fundraising_opt_out")


def test_a_frequency_cap_and_quiet_hours_defer_instead_of_sending(shop: Shop) -> None:
    cid = shop.contact("cap@example.net")
    shop.client.put(
        "/v1/marketing/caps/operations", json={"max_sends": 1, "window_hours": 24}, headers=shop.h
    )
    first = shop.campaign("operations")
    second = shop.campaign("operations")
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["cap@example.net"]
    [s2] = shop.audience(second["id"]).values()
    [rcpt] = shop.p.message(s2["message_id"])["recipients"]
    assert (s2["state"], s2["reason"], rcpt["status"]) == ("queued", "frequency_cap", "deferred")
    [s1] = shop.audience(first["id"]).values()
    assert s1["state"] == "sent"
    # Quiet hours: a window around the contact's present hour (UTC) holds a treatment message.
    hour = datetime.now(UTC).hour
    quiet = shop.campaign("treatment", quiet_start=hour, quiet_end=(hour + 2) % 24)
    shop.p.run_worker()
    [sq] = shop.audience(quiet["id"]).values()
    [held] = shop.p.message(sq["message_id"])["recipients"]
    assert (sq["reason"], held["status"]) == ("quiet_hours", "deferred")
    assert datetime.fromisoformat(held["next_attempt_at"]).hour == (hour + 2) % 24
    assert len(shop.p.sink.messages) == 1
    assert cid


def test_ab_variants_split_the_audience_and_each_contact_gets_its_own_personalization(shop: Shop) -> None:
    for i in range(20):
        shop.contact(f"v{i}@example.net")
    shop.client.post(
        "/v1/templates",
        json={"name": "promo_b", "subject": "B for {{ first_name }}", "text": "b"},
        headers=shop.h,
    )
    variants = [
        {"name": "a", "template": "promo", "weight": 1},
        {"name": "b", "template": "promo_b", "weight": 1},
    ]
    sent = shop.campaign("treatment", variants=variants)
    assert sent["queued"] == 20
    shop.p.run_worker()
    shop.p.sink.wait_for(20)
    picked = {a: s["variant"] for a, s in shop.audience(sent["id"]).items()}
    assert set(picked.values()) == {"a", "b"}
    for m in shop.p.sink.messages:
        [to] = m.rcpt_tos
        subject = email.message_from_bytes(m.data, policy=email.policy.default)["Subject"]
        name = to.split("@")[0]
        assert subject == (f"Hello {name}" if picked[to] == "a" else f"B for {name}")
        # The tenant's postal address fills the footer variable (CAN-SPAM 16 CFR 316.5).
        assert (b"1 Main St, Springfield" in m.data) == (picked[to] == "a")
    # Stats per variant: every delivery counted; a machine open left out, a human click in.
    first = next(iter(shop.audience(sent["id"]).values()))
    with shop.p.services.engine.begin() as conn:
        for kind, bot in (("message.opened", True), ("message.clicked", False), ("message.clicked", False)):
            conn.execute(
                sa.insert(events).values(
                    id=new_id("evt"), tenant_id=shop.p.tenant.id, message_id=first["message_id"], type=kind,
                    seq=99 if bot else 100, created_at=datetime.now(UTC), data={"bot_suspected": bot},
                )
            )  # fmt: skip
    stats = shop.client.get(f"/v1/marketing/campaigns/{sent['id']}/stats", headers=shop.h).json()["variants"]
    assert sum(v["sent"] for v in stats.values()) == 20 and sum(v["delivered"] for v in stats.values()) == 20
    assert stats[first["variant"]]["clicked"] == 1 and stats[first["variant"]]["opened"] == 0


def test_a_paid_mailing_needs_an_authorization_that_states_the_remuneration(shop: Shop) -> None:
    plain, paid = shop.contact("plain@example.net"), shop.contact("paid@example.net")
    shop.authorize(plain)
    shop.authorize(paid, remuneration=True, remuneration_statement="PharmaCo pays for this mailing")
    sent = shop.campaign("treatment", remunerated=True)
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["paid@example.net"]
    assert shop.audience(sent["id"])["plain@example.net"]["reason"] == "remuneration_not_disclosed"
    with shop.p.services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mkt_consent_current)).scalar() == 2
        assert conn.execute(sa.select(sa.func.count()).where(mkt_sends.c.state == "sent")).scalar() == 1


def test_a_campaign_is_sent_once_and_a_sender_key_cannot_use_a_clinical_segment(shop: Shop) -> None:
    shop.contact("x@example.net", diagnosis="asthma")
    clinical = {"name": "asthma", "rule": {"attr": "diagnosis", "op": "eq", "value": "asthma"}}
    assert shop.client.post("/v1/marketing/segments", json=clinical, headers=shop.h).status_code == 201
    _, key = shop.p.services.tenancy.create_api_key(shop.p.tenant.id, "s", ["send", "read"], actor="test")
    body = {
        "name": "c",
        "purpose": "treatment",
        "segment": "asthma",
        "from": "news@clinic.example",
        "variants": [{"name": "a", "template": "promo"}],
    }
    assert shop.client.post("/v1/marketing/campaigns", json=body, headers=bearer(key)).status_code == 403
    created = shop.client.post("/v1/marketing/campaigns", json=body, headers=shop.h).json()
    assert (
        shop.client.post(f"/v1/marketing/campaigns/{created['id']}/send", headers=shop.h).status_code == 202
    )
    assert (
        shop.client.post(f"/v1/marketing/campaigns/{created['id']}/send", headers=shop.h).status_code == 409
    )
    bad_from = shop.client.post(
        "/v1/marketing/campaigns", json={**body, "from": "not an address"}, headers=shop.h
    )
    assert bad_from.status_code == 422 and bad_from.json()["errors"][0]["field"] == "from"
    unknown = shop.client.post(
        "/v1/marketing/campaigns",
        json={**body, "variants": [{"name": "a", "template": "nope"}]},
        headers=shop.h,
    )
    assert unknown.status_code == 422


def test_a_suppressed_address_is_refused_at_intake_and_the_snapshot_says_so(shop: Shop) -> None:
    shop.contact("gone@example.net")
    shop.contact("here@example.net")
    shop.p.services.suppressions.add(
        shop.p.tenant.id, address="gone@example.net", actor="test", source="api", reason="manual"
    )
    sent = shop.campaign("operations")
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["here@example.net"]
    seen = shop.audience(sent["id"])
    assert (seen["gone@example.net"]["state"], seen["gone@example.net"]["reason"]) == (
        "skipped",
        "suppressed",
    )
    assert seen["here@example.net"]["state"] == "sent"


def test_a_campaign_over_the_complaint_rate_pauses_and_its_rest_is_held(shop: Shop) -> None:
    services = shop.p.services
    tune = {"marketing": {"complaint_rate": 0.3, "complaint_min_sent": 2}}
    tuned = shop.client.patch("/v1/tenant/settings", json=tune, headers=shop.h)
    assert tuned.status_code == 200, tuned.text
    assert tuned.json()["settings"]["marketing"]["postal_address"].startswith("1 Main St")  # merged
    build_users(services).invite(shop.p.tenant.id, "owner@clinic.example", "Owner", Role.OWNER, actor="test")
    addresses = [f"c{i}@example.net" for i in range(5)]
    for a in addresses:
        shop.contact(a)
    sent = shop.campaign("treatment")
    breaker = services.marketing.breaker
    with services.engine.begin() as conn:
        ids = sorted(conn.execute(sa.select(mkt_sends.c.message_id)).scalars())
        # Two went out, one of them drew an ARF complaint: 1/2 = 50% > 30%, but only once sent >= 2.
        conn.execute(sa.update(mkt_sends).where(mkt_sends.c.message_id == ids[0]).values(state="sent"))
        conn.execute(
            sa.insert(events).values(
                id=new_id("evt"), tenant_id=shop.p.tenant.id, message_id=ids[0], type="message.complained",
                seq=50, created_at=datetime.now(UTC), data={},
            )
        )  # fmt: skip
    assert breaker.sweep() == []  # one sent is under complaint_min_sent
    with services.engine.begin() as conn:
        conn.execute(sa.update(mkt_sends).where(mkt_sends.c.message_id == ids[1]).values(state="sent"))
    assert breaker.sweep() == [sent["id"]]
    assert breaker.sweep() == []  # paused once
    got = shop.client.get(f"/v1/marketing/campaigns/{sent['id']}", headers=shop.h).json()
    assert got["status"] == "paused"
    with services.engine.connect() as conn:
        [details] = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "mkt_campaign:paused")
        ).scalars()
        alerted = conn.execute(
            sa.select(recipients.c.message_id).where(recipients.c.address == "owner@clinic.example")
        ).all()
    assert details["complaints"] == 1 and details["sent"] == 2
    assert len(alerted) == 1
    shop.p.run_worker()
    with services.engine.connect() as conn:
        held = dict(
            conn.execute(
                sa.select(recipients.c.address, recipients.c.last_reason).where(
                    recipients.c.message_id.in_(ids)
                )
            ).all()
        )
    assert set(held.values()) == {"campaign_paused"} and set(held) == set(addresses)
    assert not set(addresses) & set(shop.received())
