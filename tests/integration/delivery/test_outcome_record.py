"""The worker's record of outcomes (``queue.record``), on SQLite and PostgreSQL.

Only outcomes whose lease is still held are applied, each recipient once, with one attempt
and one event each; event numbers stay distinct and increasing when several writers record
recipients of the same messages at once.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.statuses import RecipientStatus
from sealmail.messages import compose, queue
from sealmail.messages.schemas import MessageIn
from sealmail.store import events as ev
from sealmail.store.tables import attempts, destinations, events, recipients


def _send(services: Services, tenant: TenantFixture, to: list[str]) -> str:
    body = MessageIn.model_validate(
        {"from": "Clinic <noreply@clinic.example>", "to": to, "subject": "Results", "text": "Ready."}
    )
    result, _ = services.messages.submit(tenant.principal, compose.from_message(body, "sealmail.test", 1000))
    return result.id


def _outcome(c: queue.Claimed, status: RecipientStatus = RecipientStatus.DELIVERED) -> queue.RecordedOutcome:
    now = datetime.now(UTC)
    if status is RecipientStatus.DELIVERED:
        attempt = Attempt(c.address, AttemptStatus.DELIVERED, "delivered", "250 ok", smtp_code=250)
        return queue.RecordedOutcome(c, attempt, now, now, status, ev.EventType.DELIVERED, method="tls")
    attempt = Attempt(c.address, AttemptStatus.DEFERRED, "connection_failed", "refused")
    later = now + timedelta(minutes=5)
    return queue.RecordedOutcome(c, attempt, now, now, status, ev.EventType.DEFERRED, next_attempt_at=later)


def _rows(services: Services, table: sa.Table, recipient_id: str) -> int:
    """Attempts, or events other than the acceptance, of one recipient."""
    query = sa.select(sa.func.count()).select_from(table).where(table.c.recipient_id == recipient_id)
    if table is events:
        query = query.where(events.c.type != str(ev.EventType.ACCEPTED))
    with services.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_an_outcome_whose_lease_was_lost_is_not_recorded(services: Services, tenant: TenantFixture) -> None:
    _send(services, tenant, ["patient@example.net"])
    engine = services.engine
    [mine] = queue.claim(engine, "w1", 10, lease_seconds=300)
    with engine.begin() as conn:
        conn.execute(sa.update(recipients).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    [theirs] = queue.claim(engine, "w2", 10, lease_seconds=300)
    assert theirs.id == mine.id

    assert queue.record(engine, "w1", [_outcome(mine)]) == 0
    assert _rows(services, attempts, mine.id) == 0 and _rows(services, events, mine.id) == 0
    with engine.connect() as conn:
        row = conn.execute(sa.select(recipients).where(recipients.c.id == mine.id)).one()
    assert (row.status, row.lease_owner, row.attempts) == ("delivering", "w2", 0)

    assert queue.record(engine, "w2", [_outcome(theirs, RecipientStatus.DEFERRED)]) == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(recipients).where(recipients.c.id == mine.id)).one()
    assert (row.status, row.lease_owner, row.lease_until, row.attempts) == ("deferred", None, None, 1)
    assert row.last_reason == "connection_failed" and row.next_attempt_at > datetime.now(UTC)
    assert _rows(services, attempts, mine.id) == 1 and _rows(services, events, mine.id) == 1


def test_a_batch_applies_held_outcomes_once_each_and_skips_the_rest(
    services: Services, tenant: TenantFixture
) -> None:
    _send(services, tenant, ["a@example.net", "b@example.org", "c@example.com"])
    engine = services.engine
    claimed = sorted(queue.claim(engine, "w1", 10, lease_seconds=300), key=lambda c: c.address)
    assert [c.address for c in claimed] == ["a@example.net", "b@example.org", "c@example.com"]
    a, b, c = claimed
    with engine.begin() as conn:  # c's lease went to another worker meanwhile
        conn.execute(sa.update(recipients).where(recipients.c.id == c.id).values(lease_owner="w2"))

    # a twice (the first outcome wins), b deferred, c no longer ours.
    batch = [
        _outcome(a),
        _outcome(a, RecipientStatus.DEFERRED),
        _outcome(b, RecipientStatus.DEFERRED),
        _outcome(c),
    ]
    assert queue.record(engine, "w1", batch) == 2
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(recipients))}
    assert (rows[a.id].status, rows[a.id].method, rows[a.id].attempts) == ("delivered", "tls", 1)
    assert (rows[b.id].status, rows[b.id].last_detail) == ("deferred", "refused")
    assert (rows[c.id].status, rows[c.id].lease_owner) == ("delivering", "w2")
    assert [_rows(services, attempts, r.id) for r in claimed] == [1, 1, 0]
    assert [_rows(services, events, r.id) for r in claimed] == [1, 1, 0]


def test_concurrent_records_of_one_message_number_its_events_without_gaps_or_repeats(
    services: Services, tenant: TenantFixture
) -> None:
    # Two workers finishing recipients of the same messages at once: each reservation locks
    # the message rows in id order, so neither deadlocks and no number is handed out twice.
    mids = [_send(services, tenant, [f"r{i}@example.net" for i in range(8)]) for _ in range(3)]
    engine = services.engine
    halves = {"w1": queue.claim(engine, "w1", 12, lease_seconds=300)}
    halves["w2"] = queue.claim(engine, "w2", 12, lease_seconds=300)
    assert sum(len(h) for h in halves.values()) == 24
    start = threading.Barrier(2)
    applied: list[int] = []

    def record(worker: str) -> None:
        start.wait()
        for c in halves[worker]:
            applied.append(queue.record(engine, worker, [_outcome(c)]))

    threads = [threading.Thread(target=record, args=(w,)) for w in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(applied) == 24
    with engine.connect() as conn:
        for mid in mids:
            rows = conn.execute(
                sa.select(events.c.seq, events.c.type).where(events.c.message_id == mid)
            ).all()
            # The acceptance's events, then one delivery event for each of its 8 recipients.
            assert sorted(r.seq for r in rows) == list(range(1, len(rows) + 1))
            assert sum(r.type == str(ev.EventType.DELIVERED) for r in rows) == 8


def test_a_success_resets_only_the_failure_counts_of_its_destinations(services: Services) -> None:
    engine = services.engine
    assert queue.record_destinations(engine, {"a.example": (True, "refused")}, 2, 60) == []
    assert queue.record_destinations(engine, {"b.example": (True, "refused")}, 2, 60) == []
    assert queue.record_destinations(engine, {"b.example": (True, "refused")}, 2, 60) == ["b.example"]
    # Successes only (a flush's usual case): the failing rows are reset, unknown domains
    # get no row, and a domain not in the batch keeps its count.
    queue.record_destinations(engine, {"b.example": (False, ""), "new.example": (False, "")}, 2, 60)
    with engine.connect() as conn:
        rows = {r.domain: r for r in conn.execute(sa.select(destinations))}
    assert sorted(rows) == ["a.example", "b.example"]
    assert (rows["b.example"].consecutive_failures, rows["b.example"].suspended_until) == (0, None)
    assert rows["a.example"].consecutive_failures == 1
