"""The events table as an outbox: fan-out into deliveries, claiming, writing results back.

Fan-out reads each active endpoint's events after its cursor and inserts one delivery per
(endpoint, event); the unique constraint makes a second insert a no-op, so fan-out is
idempotent and every event is delivered at least once.  Event ids are time-ordered but
come from concurrent transactions, which can commit out of id order: an event with an id
*below* the cursor may become visible after the cursor moved past it.  So every scan
starts ``lookback`` before the cursor's time (a transaction open longer than that, plus
clock skew between writers, is the limit of the guarantee).

Claiming is the recipients queue's pattern (``store/queue.py``): ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, ``UPDATE … RETURNING`` under SQLite's ``BEGIN IMMEDIATE``; a lease
that ran out makes a delivery due again, and results are written only while the lease is
still ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import events, messages
from sealmail.webhooks.payload import TEST_EVENT_TYPE
from sealmail.webhooks.policy import Decision, DeliveryVerdict, DisablePolicy, should_disable
from sealmail.webhooks.states import DeliveryStatus, EndpointStatus
from sealmail.webhooks.tables import (
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
    webhook_endpoints,
)

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as in ``ids.py``
SYSTEM_ACTOR = "system:webhooks"


# -- time-ordered ids ----------------------------------------------------------------------
def id_floor(prefix: str, when: datetime) -> str:
    """The smallest id ``ids.new_id(prefix)`` can produce at ``when`` (time part, zero randomness)."""
    ms = max(int(when.timestamp() * 1000), 0)
    chars = []
    for _ in range(10):
        chars.append(_ALPHABET[ms & 31])
        ms >>= 5
    return f"{prefix}_{''.join(reversed(chars))}{'0' * 16}"


def id_time(value: str) -> datetime:
    """The creation time encoded in a time-ordered id."""
    body = value.rsplit("_", 1)[-1][:10]
    ms = 0
    for ch in body:
        ms = ms * 32 + _ALPHABET.index(ch)
    return datetime.fromtimestamp(ms / 1000, UTC)


def _insert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# -- matching ------------------------------------------------------------------------------
def event_filter(endpoint: Any) -> list[sa.ColumnElement[bool]]:
    """SQL conditions on ``events`` (outer-joined to ``messages``) for an endpoint's filters."""
    conds: list[sa.ColumnElement[bool]] = [events.c.tenant_id == endpoint.tenant_id]
    types: list[str] = list(endpoint.event_types or [])
    if types:
        exact = [t for t in types if not t.endswith(".*")]
        prefixes = [t[:-1] for t in types if t.endswith(".*")]  # "message.*" -> "message."
        ors: list[sa.ColumnElement[bool]] = []
        if exact:
            ors.append(events.c.type.in_(exact))
        ors.extend(events.c.type.startswith(p, autoescape=True) for p in prefixes)
        conds.append(sa.or_(*ors))
    streams: list[str] = list(endpoint.streams or [])
    if streams:
        conds.append(messages.c.stream.in_(streams))
    return conds


def events_from() -> Any:
    return events.outerjoin(
        messages, sa.and_(messages.c.id == events.c.message_id, messages.c.tenant_id == events.c.tenant_id)
    )


def insert_deliveries(
    conn: Connection, endpoint_id: str, tenant_id: str, rows: Sequence[Any], now: datetime
) -> int:
    """One pending delivery per event row (``id``, ``type``); existing pairs are left alone."""
    if not rows:
        return 0
    values = [
        {
            "id": new_id("whd"),
            "tenant_id": tenant_id,
            "endpoint_id": endpoint_id,
            "event_id": r.id,
            "event_type": r.type,
            "webhook_id": r.id,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for r in rows
    ]
    stmt = (
        _insert(conn)(webhook_deliveries)
        .values(values)
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
    )
    return int(conn.execute(stmt).rowcount or 0)


# -- fan-out -------------------------------------------------------------------------------
def fan_out(engine: Engine, now: datetime, lookback: timedelta, batch: int = 500) -> int:
    """Create deliveries for every active endpoint's new events; returns how many."""
    with engine.begin() as conn:
        endpoints = conn.execute(
            sa.select(
                webhook_endpoints.c.id,
                webhook_endpoints.c.tenant_id,
                webhook_endpoints.c.event_types,
                webhook_endpoints.c.streams,
                webhook_endpoints.c.created_at,
                webhook_cursors.c.last_event_id,
            )
            .select_from(
                webhook_endpoints.outerjoin(
                    webhook_cursors, webhook_cursors.c.endpoint_id == webhook_endpoints.c.id
                )
            )
            .where(webhook_endpoints.c.status == EndpointStatus.ACTIVE)
        ).all()
    created = 0
    for ep in endpoints:
        # Never before the endpoint existed; otherwise from the lookback window's start.
        floor = id_floor("evt", ep.created_at)
        if ep.last_event_id:
            floor = max(floor, id_floor("evt", id_time(ep.last_event_id) - lookback))
        cursor = ep.last_event_id or ""
        after = floor
        while True:
            with engine.begin() as conn:
                already = sa.exists().where(
                    webhook_deliveries.c.endpoint_id == ep.id,
                    webhook_deliveries.c.event_id == events.c.id,
                )
                rows = conn.execute(
                    sa.select(events.c.id, events.c.type)
                    .select_from(events_from())
                    .where(events.c.id > after, *event_filter(ep), ~already)
                    .order_by(events.c.id)
                    .limit(batch)
                ).all()
                created += insert_deliveries(conn, ep.id, ep.tenant_id, rows, now)
                if rows:
                    after = rows[-1].id
                    cursor = max(cursor, after)
                _save_cursor(conn, ep.id, ep.tenant_id, cursor, now)
            if len(rows) < batch:
                break
    return created


def _save_cursor(conn: Connection, endpoint_id: str, tenant_id: str, cursor: str, now: datetime) -> None:
    if not cursor:
        return
    stmt = _insert(conn)(webhook_cursors).values(
        endpoint_id=endpoint_id, tenant_id=tenant_id, last_event_id=cursor, updated_at=now
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["endpoint_id"], set_={"last_event_id": cursor, "updated_at": now}
        )
    )


# -- claiming ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    tenant_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    webhook_id: str
    attempts: int  # attempts made before this one


_CLAIMED_COLS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.tenant_id,
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.event_id,
    webhook_deliveries.c.event_type,
    webhook_deliveries.c.webhook_id,
    webhook_deliveries.c.attempts,
)


def claim(engine: Engine, worker: str, now: datetime, limit: int, lease: timedelta) -> list[Claimed]:
    due = sa.and_(
        webhook_deliveries.c.status == DeliveryStatus.PENDING,
        webhook_deliveries.c.next_attempt_at <= now,
        sa.or_(webhook_deliveries.c.lease_until.is_(None), webhook_deliveries.c.lease_until < now),
    )
    active = sa.select(webhook_endpoints.c.id).where(webhook_endpoints.c.status == EndpointStatus.ACTIVE)
    candidates = (
        sa.select(webhook_deliveries.c.id)
        .where(due, webhook_deliveries.c.endpoint_id.in_(active))
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if engine.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_(candidates.scalar_subquery()), due)
        .values(lease_owner=worker, lease_until=now + lease, updated_at=now)
        .returning(*_CLAIMED_COLS)
    )
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
    return [Claimed(*r) for r in rows]


def lease_one(conn: Connection, delivery_id: str, worker: str, now: datetime, lease: timedelta) -> Claimed:
    """Take the lease on one delivery directly (test-sends are sent by the API caller)."""
    row = conn.execute(
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(lease_owner=worker, lease_until=now + lease, updated_at=now)
        .returning(*_CLAIMED_COLS)
    ).one()
    return Claimed(*row)


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Result:
    claimed: Claimed
    decision: Decision
    status_code: int | None
    duration_ms: int
    started_at: datetime


_DELIVERY_STATUS = {
    DeliveryVerdict.DELIVERED: DeliveryStatus.DELIVERED,
    DeliveryVerdict.RETRY: DeliveryStatus.PENDING,
    DeliveryVerdict.FAILED: DeliveryStatus.FAILED,
    DeliveryVerdict.GONE: DeliveryStatus.FAILED,
}


def record(engine: Engine, worker: str, result: Result, now: datetime, policy: DisablePolicy) -> str | None:
    """Write one attempt back; returns the reason when it disabled the endpoint."""
    with engine.begin() as conn:
        if not _write_attempt(conn, worker, result, now):
            return None  # our lease ran out and someone else owns the delivery now
        if result.claimed.event_type == TEST_EVENT_TYPE:
            return None  # test-sends never disable an endpoint
        return _count_on_endpoint(conn, result, now, policy)


def _write_attempt(conn: Connection, worker: str, result: Result, now: datetime) -> bool:
    """The delivery's new state and its attempt-log row; False when our lease was lost."""
    c, d = result.claimed, result.decision
    values: dict[str, Any] = {
        "status": _DELIVERY_STATUS[d.outcome],
        "attempts": c.attempts + 1,
        "lease_owner": None,
        "lease_until": None,
        "last_status_code": result.status_code,
        "last_error": (d.error or "")[:300] or None,
        "updated_at": now,
    }
    if d.next_attempt_at is not None:
        values["next_attempt_at"] = d.next_attempt_at
    updated = conn.execute(
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id == c.id, webhook_deliveries.c.lease_owner == worker)
        .values(**values)
    ).rowcount
    if not updated:
        return False
    conn.execute(
        sa.insert(webhook_attempts).values(
            id=new_id("wha"),
            tenant_id=c.tenant_id,
            delivery_id=c.id,
            endpoint_id=c.endpoint_id,
            at=result.started_at,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            outcome=str(d.outcome),
            error=(d.error or "")[:300] or None,
        )
    )
    return True


def _count_on_endpoint(conn: Connection, result: Result, now: datetime, policy: DisablePolicy) -> str | None:
    """A success clears the endpoint's failure streak; a failure extends it and may disable
    the endpoint (audited).  Returns the reason when it did."""
    c, d = result.claimed, result.decision
    ep = webhook_endpoints.c
    if d.outcome is DeliveryVerdict.DELIVERED:
        conn.execute(
            sa.update(webhook_endpoints)
            .where(ep.id == c.endpoint_id)
            .values(consecutive_failures=0, failing_since=None, last_success_at=now)
        )
        return None
    row = conn.execute(
        sa.update(webhook_endpoints)
        .where(ep.id == c.endpoint_id)
        .values(
            consecutive_failures=ep.consecutive_failures + 1,
            failing_since=sa.func.coalesce(ep.failing_since, now),
        )
        .returning(ep.consecutive_failures, ep.failing_since, ep.status)
    ).one()
    reason: str | None = None
    if d.outcome is DeliveryVerdict.GONE:
        reason = "the endpoint answered 410 Gone"
    elif should_disable(row.consecutive_failures, row.failing_since, now, policy):
        reason = f"{row.consecutive_failures} consecutive failed deliveries"
    if reason is None or row.status != EndpointStatus.ACTIVE:
        return None
    conn.execute(
        sa.update(webhook_endpoints)
        .where(ep.id == c.endpoint_id)
        .values(status=EndpointStatus.DISABLED, disabled_reason=reason, updated_at=now)
    )
    audit.append(
        conn,
        action=AuditAction.WEBHOOK_ENDPOINT_DISABLED,
        actor=SYSTEM_ACTOR,
        tenant_id=c.tenant_id,
        target=c.endpoint_id,
        details={"reason": reason, "delivery_id": c.id},
    )
    return reason


def drop(engine: Engine, worker: str, claimed: Claimed, reason: str, now: datetime) -> None:
    """A delivery that can never be sent (its event is gone): stop trying."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(webhook_deliveries)
            .where(webhook_deliveries.c.id == claimed.id, webhook_deliveries.c.lease_owner == worker)
            .values(
                status=DeliveryStatus.DROPPED,
                last_error=reason[:300],
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )


def load_for_sending(engine: Engine, claimed: Sequence[Claimed]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Endpoint rows by id, and (event row, message facts) by event id."""
    endpoint_ids = sorted({c.endpoint_id for c in claimed})
    event_ids = sorted({c.event_id for c in claimed if c.event_type != TEST_EVENT_TYPE})
    with db.reader(engine) as conn:
        eps = {
            r.id: r
            for r in conn.execute(
                sa.select(webhook_endpoints).where(webhook_endpoints.c.id.in_(endpoint_ids))
            )
        }
        evs: dict[str, Any] = {}
        if event_ids:
            rows = conn.execute(
                sa.select(
                    events,
                    messages.c.stream.label("m_stream"),
                    messages.c.tags.label("m_tags"),
                    messages.c.metadata.label("m_metadata"),
                )
                .select_from(events_from())
                .where(events.c.id.in_(event_ids))
            ).mappings()
            for r in rows:
                message = (
                    {"stream": r["m_stream"], "tags": r["m_tags"], "metadata": r["m_metadata"]}
                    if r["m_stream"] is not None
                    else None
                )
                evs[r["id"]] = (dict(r), message)
    return eps, evs
