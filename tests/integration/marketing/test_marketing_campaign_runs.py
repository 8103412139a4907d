"""Campaign expansion as a background job, on SQLite and PostgreSQL: ``send`` only marks the
campaign ``starting`` (202); the expander claims it under a lease, walks the segment in
batches from a cursor, and a crashed expansion resumes without queueing anyone twice.
Pause, resume and cancel over the API, with hostile transitions refused."""

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import console_server, csrf, enrol
from tests.integration.marketing.conftest import Keys, bearer
from tests.support.waiting import wait_until_async
from typer.testing import CliRunner

from sealmail import runtime
from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings
from sealmail.ids import new_id
from sealmail.marketing.campaign_runs import CampaignRuns, Claim
from sealmail.marketing.tables import mkt_campaigns, mkt_segments, mkt_sends
from sealmail.marketing.tables import mkt_contacts as contacts
from sealmail.store.tables import audit_log, events, messages, recipients
from sealmail.users.roles import Role

TEMPLATE = {"name": "note", "subject": "Hello {{ plan }}", "text": "A note for you."}


def prepare(client: TestClient, keys: Keys, contacts: int) -> list[str]:
    assert client.post("/v1/templates", json=TEMPLATE, headers=keys.admin).status_code == 201
    attr = {"name": "plan", "type": "text", "phi_class": "none"}
    assert client.post("/v1/marketing/attributes", json=attr, headers=keys.admin).status_code == 201
    seg = {"name": "all", "rule": {"attr": "plan", "op": "exists"}}
    assert client.post("/v1/marketing/segments", json=seg, headers=keys.admin).status_code == 201
    addresses = [f"p{i:04d}@example.net" for i in range(contacts)]
    rows = [{"email": a, "attributes": {"plan": "gold"}} for a in addresses]
    # One contact outside the segment: it must never be queued.
    rows.append({"email": "outside@example.net", "attributes": {}})
    r = client.post("/v1/marketing/contacts/batch", json={"contacts": rows}, headers=keys.admin)
    assert r.status_code == 200 and r.json()["failed"] == 0, r.text
    return addresses


def start(client: TestClient, keys: Keys) -> str:
    body = {
        "name": "Reminder",
        "purpose": "treatment",
        "segment": "all",
        "from": "care@clinic.example",
        "variants": [{"name": "a", "template": "note"}],
    }
    created = client.post("/v1/marketing/campaigns", json=body, headers=keys.admin)
    assert created.status_code == 201, created.text
    cid = str(created.json()["id"])
    sent = client.post(f"/v1/marketing/campaigns/{cid}/send", headers=keys.admin)
    assert sent.status_code == 202, sent.text
    assert (sent.json()["status"], sent.json()["audience"], sent.json()["queued"]) == ("starting", 0, 0)
    return cid


def per_contact(services: Services, cid: str) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter(
            conn.execute(sa.select(mkt_sends.c.contact_id).where(mkt_sends.c.campaign_id == cid)).scalars()
        )


def per_address(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter(conn.execute(sa.select(recipients.c.address)).scalars())


def each_once(services: Services, cid: str, addresses: list[str]) -> None:
    """Every member got exactly one message and one ``mkt_sends`` row."""
    assert per_address(services) == Counter(dict.fromkeys(addresses, 1))
    counts = per_contact(services, cid)
    assert len(counts) == len(addresses) and set(counts.values()) == {1}


def campaign(services: Services, cid: str) -> Any:
    with services.engine.connect() as conn:
        return conn.execute(sa.select(mkt_campaigns).where(mkt_campaigns.c.id == cid)).one()


class Recording(CampaignRuns):
    """Records each cursor move (one per batch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursors: list[str] = []

    def _advance(self, worker: str, claim: Claim, cursor: str, t: Any) -> bool:
        moved = super()._advance(worker, claim, cursor, t)
        self.cursors.append(cursor)
        return moved


def test_send_returns_at_once_and_the_expander_queues_the_segment_in_batches(
    client: TestClient, keys: Keys, services: Services
) -> None:
    addresses = prepare(client, keys, 95)
    cid = start(client, keys)
    assert per_contact(services, cid) == Counter()  # nothing expanded inside the request
    runs = Recording(services.engine, services.marketing.campaigns, batch=20)
    assert runs.expand_due("w1") == 95
    assert len(runs.cursors) == 5 and runs.cursors == sorted(runs.cursors)  # 20+20+20+20+15
    got = client.get(f"/v1/marketing/campaigns/{cid}", headers=keys.admin).json()
    assert (got["status"], got["audience"], got["queued"], got["failed"]) == ("sending", 95, 95, 0)
    assert set(per_contact(services, cid).values()) == {1} and len(per_contact(services, cid)) == 95
    assert per_address(services) == Counter(dict.fromkeys(addresses, 1))
    assert runs.expand_due("w1") == 0  # nothing left to claim
    row = campaign(services, cid)
    assert row.lease_owner is None and row.expanded_at is not None
    with services.engine.connect() as conn:
        finished = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "mkt_campaign:finished")
        ).scalar_one()
    assert finished == {"audience": 95, "queued": 95, "failed": 0}


def in_segment_order(services: Services, addresses: list[str]) -> list[tuple[str, str]]:
    """(contact id, address) in the order the expander walks them: by contact id."""
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(contacts.c.id, contacts.c.email)
            .where(contacts.c.email.in_(addresses))
            .order_by(contacts.c.id)
        ).all()
    return [(r.id, r.email) for r in rows]


def expire_lease(services: Services, cid: str) -> None:
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_campaigns)
            .where(mkt_campaigns.c.id == cid)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_a_crashed_expansion_resumes_from_its_cursor_and_queues_each_contact_once(
    client: TestClient, keys: Keys, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    addresses = prepare(client, keys, 50)
    cid = start(client, keys)
    mk = services.marketing
    real = mk.campaigns.messages.prepare
    calls = {"n": 0}

    def dies_at_the_27th(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 27:  # the process dies while preparing the second batch
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(mk.campaigns.messages, "prepare", dies_at_the_27th)
    first = CampaignRuns(services.engine, mk.campaigns, batch=20)
    with pytest.raises(RuntimeError):
        first.expand_due("w1")
    monkeypatch.setattr(mk.campaigns.messages, "prepare", real)
    row = campaign(services, cid)
    assert (row.status, row.lease_owner, row.queued) == ("starting", "w1", 20)
    # The second batch commits all together or not at all: none of its 6 prepared messages.
    assert len(per_contact(services, cid)) == 20 and sum(per_address(services).values()) == 20
    second = CampaignRuns(services.engine, mk.campaigns, batch=20)
    assert second.claim("w2") is None  # w1's lease still stands
    expire_lease(services, cid)
    second.expand_due("w2")
    each_once(services, cid, addresses)
    got = client.get(f"/v1/marketing/campaigns/{cid}", headers=keys.admin).json()
    assert (got["status"], got["audience"], got["queued"], got["failed"]) == ("sending", 50, 50, 0)


class SnapshotClashes(CampaignRuns):
    """Before the chosen contact's message is written, another row takes its message id in
    ``mkt_sends`` (a real primary-key clash, committed): the batch's snapshot insert fails."""

    def __init__(self, *args: Any, clash: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clash = clash
        self.taken: list[str] = []

    def _prepare(self, plan: Any, out: Any, contact: Any, variant: str, idem: Any) -> Any:
        prepared = super()._prepare(plan, out, contact, variant, idem)
        if contact.id == self.clash and prepared is not None:
            message_id = prepared.message["id"]
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(mkt_sends).values(
                        message_id=message_id, tenant_id=contact.tenant_id, contact_id=contact.id,
                        purpose="treatment", channel="email", remunerated=False, matched=[],
                        quiet_start=21, quiet_end=8, state="sent", created_at=datetime.now(UTC),
                    )
                )  # fmt: skip
            self.taken.append(message_id)
        return prepared


def test_a_batch_whose_snapshots_cannot_be_written_stores_none_of_its_messages(
    client: TestClient, keys: Keys, services: Services
) -> None:
    addresses = prepare(client, keys, 50)
    cid = start(client, keys)
    walk = in_segment_order(services, addresses)
    ids, first = [i for i, _ in walk], [a for _, a in walk[:20]]
    runs = SnapshotClashes(services.engine, services.marketing.campaigns, batch=20, clash=ids[25])
    with pytest.raises(IntegrityError):
        runs.expand_due("w1")
    assert len(runs.taken) == 2  # the batch was redone once from fresh reads, and failed again
    row = campaign(services, cid)
    assert (row.expand_cursor, row.audience, row.queued) == (ids[19], 20, 20)  # the cursor stayed
    with services.engine.connect() as conn:
        stored = set(conn.execute(sa.select(messages.c.id)).scalars())
    # The clashing messages were inserted before the failing snapshot insert: rolled back too.
    assert not stored & set(runs.taken)
    assert len(stored) == 20 and per_address(services) == Counter(dict.fromkeys(first, 1))
    assert len(per_contact(services, cid)) == 20
    expire_lease(services, cid)
    assert CampaignRuns(services.engine, services.marketing.campaigns, batch=20).expand_due("w2") == 30
    each_once(services, cid, addresses)
    row = campaign(services, cid)
    assert (row.status, row.audience, row.queued, row.failed) == ("sending", 50, 50, 0)


class Overtaken(CampaignRuns):
    """Between reading its first batch and writing it, a second expander (one a pause and
    resume let in while this one still held the batch) queues the same batch first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.other = CampaignRuns(*args, **kwargs)
        self.current: tuple[Any, list[Any]] | None = None
        self.overtaken = 0

    def _queue_batch(self, plan: Any, batch: list[Any]) -> Any:
        self.current = (plan, batch)
        return super()._queue_batch(plan, batch)

    def _prepare(self, plan: Any, out: Any, contact: Any, variant: str, idem: Any) -> Any:
        if self.current is not None and not self.overtaken:
            self.overtaken = self.other._try_batch(*self.current).queued
        return super()._prepare(plan, out, contact, variant, idem)


def test_a_batch_another_expander_wrote_first_is_redone_from_fresh_reads_not_lost(
    client: TestClient, keys: Keys, services: Services
) -> None:
    addresses = prepare(client, keys, 30)
    cid = start(client, keys)
    runs = Overtaken(services.engine, services.marketing.campaigns, batch=20)
    assert runs.expand_due("w1") == 30
    assert runs.overtaken == 20  # the other expander stored the whole first batch
    each_once(services, cid, addresses)
    row = campaign(services, cid)
    assert (row.status, row.audience, row.queued, row.failed) == ("sending", 30, 30, 0)


def test_a_message_queued_before_a_crash_without_its_snapshot_is_replayed_not_repeated(
    client: TestClient, keys: Keys, services: Services
) -> None:
    addresses = prepare(client, keys, 30)
    cid = start(client, keys)
    runs = Recording(services.engine, services.marketing.campaigns, batch=20)
    assert runs.expand_due("w1") == 30
    lost = in_segment_order(services, addresses)[24][1]  # in the second batch
    with services.engine.begin() as conn:
        # What the one-at-a-time expander could leave: the 25th message queued under its
        # idempotency key, then a crash before its snapshot row and the cursor move.
        message_id = conn.execute(
            sa.select(recipients.c.message_id).where(recipients.c.address == lost)
        ).scalar_one()
        conn.execute(sa.delete(mkt_sends).where(mkt_sends.c.message_id == message_id))
        conn.execute(
            sa.update(mkt_campaigns)
            .where(mkt_campaigns.c.id == cid)
            .values(status="starting", expand_cursor=runs.cursors[0], audience=20, queued=20,
                    expanded_at=None, lease_owner=None, lease_until=None)
        )  # fmt: skip
    with services.engine.connect() as conn:
        messages_before = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
    assert runs.expand_due("w2") == 10
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == messages_before
        snapshot = conn.execute(
            sa.select(mkt_sends.c.message_id, mkt_sends.c.state, mkt_sends.c.variant).where(
                mkt_sends.c.campaign_id == cid, mkt_sends.c.message_id == message_id
            )
        ).one()
    assert tuple(snapshot) == (message_id, "queued", "a")  # the stored message got its row
    each_once(services, cid, addresses)
    row = campaign(services, cid)
    assert (row.status, row.audience, row.queued, row.failed) == ("sending", 30, 30, 0)


def test_the_counts_are_the_audience_the_queued_and_the_failed_exactly(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    nick = {"name": "nick", "type": "text", "phi_class": "none"}
    assert client.post("/v1/marketing/attributes", json=nick, headers=keys.admin).status_code == 201
    addresses = prepare(client, keys, 0)
    greeting = {"name": "greet", "subject": "Hello {{ nick }}", "text": "A note for you."}
    assert client.post("/v1/templates", json=greeting, headers=keys.admin).status_code == 201
    rows = [
        {"email": f"n{i}@example.net", "attributes": {"plan": "gold", "nick": f"N{i}"}} for i in range(12)
    ]
    rows[5]["attributes"].pop("nick")  # in the segment, but its subject cannot be rendered
    r = client.post("/v1/marketing/contacts/batch", json={"contacts": rows}, headers=keys.admin)
    assert r.status_code == 200 and r.json()["failed"] == 0, r.text
    services.suppressions.add(
        tenant.id, address="n7@example.net", actor="test", source="api", reason="manual"
    )
    body = {
        "name": "Greeting",
        "purpose": "treatment",
        "segment": "all",
        "from": "care@clinic.example",
        "variants": [{"name": "a", "template": "greet"}],
    }
    cid = client.post("/v1/marketing/campaigns", json=body, headers=keys.admin).json()["id"]
    assert client.post(f"/v1/marketing/campaigns/{cid}/send", headers=keys.admin).status_code == 202
    assert CampaignRuns(services.engine, services.marketing.campaigns, batch=5).expand_due("w1") == 11
    got = client.get(f"/v1/marketing/campaigns/{cid}", headers=keys.admin).json()
    assert (got["audience"], got["queued"], got["failed"]) == (12, 11, 1)
    assert addresses == [] and "n5@example.net" not in per_address(services)
    with services.engine.connect() as conn:
        states = dict(
            conn.execute(
                sa.select(contacts.c.email, mkt_sends.c.state)
                .join(contacts, contacts.c.id == mkt_sends.c.contact_id)
                .where(mkt_sends.c.campaign_id == cid)
            ).all()
        )
    assert len(states) == 11 and "n5@example.net" not in states
    assert states.pop("n7@example.net") == "skipped"  # refused at intake: suppressed
    assert set(states.values()) == {"queued"}


def test_a_campaign_key_another_request_took_fails_only_its_contact(
    client: TestClient, keys: Keys, services: Services
) -> None:
    addresses = prepare(client, keys, 8)
    cid = start(client, keys)
    walk = in_segment_order(services, addresses)
    # An API client happened to send its own message under this contact's campaign key.
    own = {
        "from": "care@clinic.example",
        "to": ["x@example.net"],
        "subject": "Hi",
        "text": "Hi",
        "stream": "phi",
    }
    headers = {**keys.admin, "Idempotency-Key": f"campaign:{cid}:{walk[3][0]}"}
    assert client.post("/v1/messages", json=own, headers=headers).status_code in (200, 201, 202)
    assert CampaignRuns(services.engine, services.marketing.campaigns, batch=5).expand_due("w1") == 7
    row = campaign(services, cid)
    assert (row.status, row.audience, row.queued, row.failed) == ("sending", 8, 7, 1)
    assert walk[3][1] not in per_address(services) and walk[4][1] in per_address(services)
    assert len(per_contact(services, cid)) == 7


def test_concurrent_expanders_never_both_claim_or_expand_a_campaign(
    client: TestClient, keys: Keys, services: Services
) -> None:
    addresses = prepare(client, keys, 30)
    cid = start(client, keys)
    runs = CampaignRuns(services.engine, services.marketing.campaigns, batch=5)
    gate = threading.Barrier(6)
    claims: list[Claim | None] = []

    def claim(name: str) -> None:
        gate.wait()
        claims.append(runs.claim(name))

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].campaign_id == cid
    # The winner died; the lease runs out; now expanders race over the whole campaign.
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_campaigns)
            .where(mkt_campaigns.c.id == cid)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    done: list[int] = []
    racers = [threading.Thread(target=lambda n=n: done.append(runs.expand_due(n))) for n in ("a", "b", "c")]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert sorted(done) == [0, 0, 30]  # exactly one of them expanded it
    assert per_address(services) == Counter(dict.fromkeys(addresses, 1))


def test_pause_stops_the_expansion_and_resume_continues_where_it_stopped(
    client: TestClient, keys: Keys, services: Services, other_tenant: TenantFixture
) -> None:
    addresses = prepare(client, keys, 40)
    cid = start(client, keys)
    url = f"/v1/marketing/campaigns/{cid}"

    class PausesAfterTheFirstBatch(Recording):
        def _advance(self, worker: str, claim: Claim, cursor: str, t: Any) -> bool:
            moved = super()._advance(worker, claim, cursor, t)
            if len(self.cursors) == 1:
                paused = client.post(f"{url}/pause", headers=keys.sender)
                assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
            return moved

    runs = PausesAfterTheFirstBatch(services.engine, services.marketing.campaigns, batch=10)
    runs.expand_due("w1")
    assert len(runs.cursors) == 2  # the second batch's move was refused: paused
    assert 10 <= len(per_contact(services, cid)) <= 20
    assert runs.claim("w1") is None  # a paused campaign is not expanded
    assert client.post(f"{url}/pause", headers=keys.sender).status_code == 409
    assert client.post(f"{url}/resume", headers=keys.reader).status_code == 403
    _, other_key = services.tenancy.create_api_key(other_tenant.id, "o", ["send", "read"], actor="test")
    assert client.post(f"{url}/resume", headers=bearer(other_key)).status_code == 404
    resumed = client.post(f"{url}/resume", headers=keys.sender)
    assert resumed.status_code == 200 and resumed.json()["status"] == "starting", resumed.text
    runs.expand_due("w2")
    assert per_address(services) == Counter(dict.fromkeys(addresses, 1))
    got = client.get(url, headers=keys.admin).json()
    assert (got["status"], got["audience"], got["queued"]) == ("sending", 40, 40)
    # A fully expanded campaign pauses and resumes to sending; cancelled is final.
    assert client.post(f"{url}/pause", headers=keys.sender).json()["status"] == "paused"
    assert client.post(f"{url}/resume", headers=keys.sender).json()["status"] == "sending"
    assert client.post(f"{url}/cancel", headers=keys.sender).json()["status"] == "cancelled"
    for change in ("pause", "resume", "cancel"):
        refused = client.post(f"{url}/{change}", headers=keys.sender)
        assert refused.status_code == 409 and refused.headers["content-type"].startswith(
            "application/problem"
        )
    assert client.post("/v1/marketing/campaigns/cmp_nope/pause", headers=keys.sender).status_code == 404
    with services.engine.connect() as conn:
        actions = list(
            conn.execute(
                sa.select(audit_log.c.action)
                .where(audit_log.c.target == cid, audit_log.c.action.like("mkt_campaign:%"))
                .order_by(audit_log.c.seq)
            ).scalars()
        )
    assert actions == [
        "mkt_campaign:created",
        "mkt_campaign:started",
        "mkt_campaign:paused",
        "mkt_campaign:resumed",
        "mkt_campaign:finished",
        "mkt_campaign:paused",
        "mkt_campaign:resumed",
        "mkt_campaign:cancelled",
    ]


def test_settle_marks_a_campaign_sent_once_every_send_is_decided(
    client: TestClient, keys: Keys, services: Services
) -> None:
    prepare(client, keys, 3)
    cid = start(client, keys)
    runs = services.marketing.runs
    runs.expand_due("w1")
    assert runs.settle() == 0  # three sends still queued
    with services.engine.begin() as conn:
        conn.execute(sa.update(mkt_sends).where(mkt_sends.c.campaign_id == cid).values(state="sent"))
    assert runs.settle() == 1
    assert client.get(f"/v1/marketing/campaigns/{cid}", headers=keys.admin).json()["status"] == "sent"


def test_the_cli_expands_pauses_resumes_and_cancels(
    settings: Settings, client: TestClient, keys: Keys, services: Services
) -> None:
    env = {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}
    prepare(client, keys, 4)
    cid = start(client, keys)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(sealmail_cli, ["marketing", *args], env=env)

    expanded = run("expand")
    assert expanded.exit_code == 0 and "4 messages queued" in expanded.output, expanded.output
    paused = run("pause", cid)
    assert paused.exit_code == 0 and "sending -> paused" in paused.output, paused.output
    again = run("pause", cid)
    assert again.exit_code == 1 and "is paused" in again.output
    assert "paused -> sending" in run("resume", cid).output
    assert "sending -> cancelled" in run("cancel", cid).output
    assert run("resume", "cmp_nope").exit_code == 1
    with services.engine.connect() as conn:
        actors = set(
            conn.execute(
                sa.select(audit_log.c.actor).where(
                    audit_log.c.target == cid,
                    audit_log.c.action.in_(["mkt_campaign:paused", "mkt_campaign:cancelled"]),
                )
            ).scalars()
        )
    assert actors == {"cli"}


def test_the_console_pauses_and_cancels_for_compliance_and_resumes_only_with_compose(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    prepare(client, keys, 2)
    cid = start(client, keys)
    with console_server(services) as console:
        people = {}
        for role in (Role.COMPLIANCE, Role.SENDER):
            _, token = console.users.invite(
                tenant.id, f"{role}@clinic.example", str(role), role, actor="test"
            )
            people[role] = enrol(console, token, f"{role}@clinic.example")
        officer, sender = people[Role.COMPLIANCE], people[Role.SENDER]
        page = officer.http.get("/console/marketing")
        assert f"/console/marketing/campaigns/{cid}/pause" in page.text
        assert f"/console/marketing/campaigns/{cid}/resume" not in page.text  # not paused
        token = csrf(page)
        forged = officer.http.post(f"/console/marketing/campaigns/{cid}/pause", data={"csrf": "0" * 64})
        assert forged.status_code == 403 and campaign(services, cid).status == "starting"
        done = officer.http.post(f"/console/marketing/campaigns/{cid}/pause", data={"csrf": token})
        assert done.status_code == 303, done.text
        assert campaign(services, cid).status == "paused"
        page = officer.http.get("/console/marketing")
        assert f"/console/marketing/campaigns/{cid}/resume" in page.text
        refused = officer.http.post(f"/console/marketing/campaigns/{cid}/resume", data={"csrf": csrf(page)})
        assert refused.status_code == 403 and campaign(services, cid).status == "paused"
        mine = sender.http.get("/console/marketing")
        resumed = sender.http.post(f"/console/marketing/campaigns/{cid}/resume", data={"csrf": csrf(mine)})
        assert resumed.status_code == 303 and campaign(services, cid).status == "starting"
        twice = sender.http.post(f"/console/marketing/campaigns/{cid}/resume", data={"csrf": csrf(mine)})
        assert twice.status_code == 409
        cancelled = officer.http.post(f"/console/marketing/campaigns/{cid}/cancel", data={"csrf": csrf(page)})
        assert cancelled.status_code == 303 and campaign(services, cid).status == "cancelled"
    assert services.marketing.runs.expand_due("w1") == 0  # a cancelled campaign is never expanded


def test_a_resumed_campaign_is_judged_by_the_complaint_breaker_only_on_what_follows(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    prepare(client, keys, 6)
    cid = start(client, keys)
    tune = {"marketing": {"complaint_rate": 0.3, "complaint_min_sent": 2}}
    assert client.patch("/v1/tenant/settings", json=tune, headers=keys.admin).status_code == 200
    services.marketing.runs.expand_due("w1")
    with services.engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(mkt_sends.c.message_id)).scalars())

    def sent_and_complained(sent: list[str], complained: str) -> None:
        now = datetime.now(UTC)
        with services.engine.begin() as conn:
            conn.execute(
                sa.update(mkt_sends).where(mkt_sends.c.message_id.in_(sent)).values(state="sent", sent_at=now)
            )
            conn.execute(
                sa.insert(events).values(
                    id=new_id("evt"), tenant_id=tenant.id, message_id=complained, type="message.complained",
                    seq=50, created_at=now, data={},
                )
            )  # fmt: skip

    breaker = services.marketing.breaker
    sent_and_complained(ids[:2], ids[0])
    assert breaker.sweep() == [cid]
    assert (
        client.post(f"/v1/marketing/campaigns/{cid}/resume", headers=keys.sender).json()["status"]
        == "sending"
    )
    assert breaker.sweep() == []  # the complaint before the resume no longer counts
    with services.engine.begin() as conn:  # two clean sends after the resume
        conn.execute(
            sa.update(mkt_sends)
            .where(mkt_sends.c.message_id.in_(ids[2:4]))
            .values(state="sent", sent_at=datetime.now(UTC) + timedelta(seconds=1))
        )
    assert breaker.sweep() == []
    sent_and_complained(ids[4:5], ids[4])  # a new complaint: 1 of 3 since the resume, over 30%
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_sends)
            .where(mkt_sends.c.message_id == ids[4])
            .values(sent_at=datetime.now(UTC) + timedelta(seconds=1))
        )
    assert breaker.sweep() == [cid]


def test_the_marketing_loop_of_the_worker_role_expands_a_started_campaign(
    client: TestClient, keys: Keys, services: Services
) -> None:
    addresses = prepare(client, keys, 7)
    cid = start(client, keys)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(runtime.run_marketing(services, stop, "worker-1"))
        try:
            await wait_until_async(lambda: campaign(services, cid).status == "sending", 30, "expanded")
        finally:
            stop.set()
            await loop

    asyncio.run(run())
    assert per_address(services) == Counter(dict.fromkeys(addresses, 1))


def test_a_campaign_whose_stored_segment_no_longer_compiles_is_paused_with_the_reason(
    client: TestClient, keys: Keys, services: Services
) -> None:
    # A rule stored before the whole-rule caps (marketing/rules.py) were added: 3 × 100 domains.
    prepare(client, keys, 3)
    cid = start(client, keys)
    domains = [f"d{i}.example" for i in range(300)]
    grown = {"any": [{"contact": "email_domain", "op": "in", "value": domains[i::3]} for i in range(3)]}
    with services.engine.begin() as conn:
        segment_id = conn.execute(
            sa.select(mkt_campaigns.c.segment_id).where(mkt_campaigns.c.id == cid)
        ).scalar_one()
        conn.execute(sa.update(mkt_segments).where(mkt_segments.c.id == segment_id).values(rule=grown))
    runs = CampaignRuns(services.engine, services.marketing.campaigns, batch=20)
    assert runs.expand_due("w1") == 0  # no exception out of the worker's loop, nothing queued
    row = campaign(services, cid)
    assert (row.status, row.lease_owner) == ("paused", None)
    assert runs.expand_due("w1") == 0 and campaign(services, cid).status == "paused"  # not retried
    with services.engine.connect() as conn:
        details = conn.execute(
            sa.select(audit_log.c.details).where(
                audit_log.c.action == "mkt_campaign:paused", audit_log.c.target == cid
            )
        ).scalar_one()
    assert details["to"] == "paused" and details["reason"][0]["field"] == "rule.any[2].value"
    assert per_contact(services, cid) == Counter()
