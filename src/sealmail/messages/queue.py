"""The delivery queue is the recipients table.

Claiming marks due recipients ``delivering`` with a lease (owner + expiry).  On
PostgreSQL the candidate rows are locked ``FOR UPDATE SKIP LOCKED`` so concurrent
workers on any number of hosts take disjoint sets without waiting on each other; on
SQLite the same ``UPDATE … RETURNING`` runs under ``BEGIN IMMEDIATE``, which makes the
whole claim one exclusive step.  A recipient whose lease ran out (its worker died) is
due again.  Results are written back only while the lease is still ours.

Size: claim, load, record and the destination TLS facts a record writes share one
connection and transaction (``record_in`` / ``record_destinations_in``); they stay beside
the statements they must commit with.
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

from sealmail.domain.outcomes import Attempt
from sealmail.domain.statuses import RecipientStatus
from sealmail.ids import new_ids
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.driver_query import DriverQuery
from sealmail.store.tables import (
    attempts,
    destination_tls,
    destinations,
    messages,
    recipients,
    tenants,
)
from sealmail.suppressions import service as suppressions


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    tenant_id: str
    message_id: str
    address: str
    domain: str
    attempts: int  # attempts made before this one
    notice: str | None = None  # email | sms | both as the sender asked; None: the contact's choice


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: str
    tenant_id: str
    stream: str
    mail_from: str
    tls_policy: str | None
    created_at: datetime
    expires_at: datetime | None
    tenant_key_id: str | None
    wrapped_data_key: bytes | None
    content: bytes
    tenant_settings: dict[str, Any]
    tenant_name: str = ""
    header_from: str = ""
    dlp_action: str = "none"
    dlp_findings: list[dict[str, Any]] | None = None
    source: str = "api"
    tags: tuple[str, ...] = ()
    tls_required: str | None = None  # RFC 8689: "requiretls" | "no" | None
    protection: str = "auto"


@dataclass(frozen=True, slots=True)
class RecordedOutcome:
    """What to write back for one recipient after one attempt."""

    claimed: Claimed
    attempt: Attempt
    started_at: datetime
    finished_at: datetime
    status: RecipientStatus  # DELIVERED | DEFERRED | BOUNCED | EXPIRED
    event: ev.EventType
    next_attempt_at: datetime | None = None
    extra: dict[str, Any] | None = None
    method: str | None = None  # SecureLine's choice: pgp | smime | tls | portal
    method_reason: str | None = None
    # Attempts of the same pass before ``attempt`` (a TLS refusal a portal notice then
    # covered): recorded as attempts of their own, so nothing the fallback hid is lost.
    prior: tuple[Attempt, ...] = ()
    # The recipient key the copy was encrypted to and where it came from (PGP / S/MIME).
    key_fingerprint: str | None = None
    key_source: str | None = None


def claim(engine: Engine, worker: str, limit: int, lease_seconds: int) -> list[Claimed]:
    with engine.begin() as conn:
        return _claim(conn, worker, limit, lease_seconds)


def claim_with_messages(
    engine: Engine, worker: str, limit: int, lease_seconds: int
) -> tuple[list[Claimed], dict[str, QueuedMessage]]:
    """``claim`` and ``load_messages`` in one transaction: one round of BEGIN/COMMIT less
    per claim, and the worker hands one job to its thread pool instead of two."""
    with engine.begin() as conn:
        return claim_with_messages_in(conn, worker, limit, lease_seconds)


def claim_with_messages_in(
    conn: Connection, worker: str, limit: int, lease_seconds: int, patience: float = 0.0
) -> tuple[list[Claimed], dict[str, QueuedMessage]]:
    """``claim_with_messages`` inside the caller's transaction (the worker's record flush).

    ``patience``: claim only what has been due (or its lease expired) for that many seconds:
    a worker waiting for the bell's turn takes what the worker holding it left behind, not
    the mail it is about to take (``delivery.bell``)."""
    claimed = _claim(conn, worker, limit, lease_seconds, patience)
    return claimed, _load_messages(conn, sorted({c.message_id for c in claimed}))


def _claim_statement(skip_locked: bool) -> sa.Update:
    """The claim, built once per dialect (building it per claim cost more than running it)."""
    now = sa.bindparam("b_now", type_=recipients.c.next_attempt_at.type)
    due_by = sa.bindparam("b_due_by", type_=recipients.c.next_attempt_at.type)
    due = sa.or_(
        sa.and_(
            recipients.c.status.in_((RecipientStatus.QUEUED, RecipientStatus.DEFERRED)),
            recipients.c.next_attempt_at <= due_by,
        ),
        sa.and_(recipients.c.status == RecipientStatus.DELIVERING, recipients.c.lease_until < due_by),
    )
    suspended = sa.select(destinations.c.domain).where(destinations.c.suspended_until > now)
    candidates = (
        sa.select(recipients.c.id)
        .where(due, recipients.c.domain.not_in(suspended))
        .order_by(recipients.c.next_attempt_at)
        .limit(sa.bindparam("b_limit"))
    )
    if skip_locked:
        candidates = candidates.with_for_update(skip_locked=True)
    return (
        sa.update(recipients)
        .where(recipients.c.id.in_(candidates.scalar_subquery()))
        .values(
            status=RecipientStatus.DELIVERING,
            lease_owner=sa.bindparam("b_worker"),
            lease_until=sa.bindparam("b_lease_until"),
            updated_at=now,
        )
        .returning(
            recipients.c.id,
            recipients.c.tenant_id,
            recipients.c.message_id,
            recipients.c.address,
            recipients.c.domain,
            recipients.c.attempts,
            recipients.c.notice,
        )
    )


# PostgreSQL locks the candidates ``FOR UPDATE SKIP LOCKED``; SQLite's IMMEDIATE
# transaction already makes the claim exclusive (and runs it on the driver: ``db.DriverQuery``).
_CLAIM = {True: _claim_statement(skip_locked=True), False: _claim_statement(skip_locked=False)}
_SQLITE_CLAIM = DriverQuery(_CLAIM[False])


def _claim(
    conn: Connection, worker: str, limit: int, lease_seconds: int, patience: float = 0.0
) -> list[Claimed]:
    now = datetime.now(UTC)
    params = {
        "b_now": now,
        "b_due_by": now - timedelta(seconds=patience) if patience else now,
        "b_limit": limit,
        "b_worker": worker,
        "b_lease_until": now + timedelta(seconds=lease_seconds),
    }
    if conn.dialect.name == "sqlite":
        # The columns in Claimed's field order.
        return [Claimed(*r) for r in _SQLITE_CLAIM(conn, params)]
    rows = conn.execute(_CLAIM[True], params).all()
    return [Claimed(r.id, r.tenant_id, r.message_id, r.address, r.domain, r.attempts, r.notice) for r in rows]


def load_messages(engine: Engine, ids: Sequence[str]) -> dict[str, QueuedMessage]:
    if not ids:
        return {}
    with db.reader(engine) as conn:
        return _load_messages(conn, ids)


def _load_messages(conn: Connection, ids: Sequence[str]) -> dict[str, QueuedMessage]:
    if not ids:
        return {}
    params = {"b_ids": list(ids)}
    if conn.dialect.name == "sqlite":
        rows: Sequence[Sequence[Any]] = _SQLITE_LOAD_MESSAGES(conn, params)
    else:
        rows = conn.execute(_LOAD_MESSAGES[True], params).all()
    # The columns are selected in QueuedMessage's field order: id … content, the tenant's
    # settings, name, header_from … source, tags, tls_required, protection.
    return {
        r[0]: QueuedMessage(*r[:10], dict(r[10] or {}), *r[11:16], tuple(r[16] or ()), *r[17:])  # type: ignore[call-arg]  # a row's length is not typed
        for r in rows
    }


# Built once per dialect (every claim loads its messages).
_LOAD_SELECT = sa.select(
    messages.c.id,
    messages.c.tenant_id,
    messages.c.stream,
    messages.c.mail_from,
    messages.c.tls_policy,
    messages.c.created_at,
    messages.c.expires_at,
    messages.c.tenant_key_id,
    messages.c.wrapped_data_key,
    messages.c.content,
    tenants.c.settings,
    # SecureLine needs these: the organisation's name for portal notices, the
    # From address for DKIM and notices, and the DLP verdict from intake.
    tenants.c.name,
    messages.c.header_from,
    messages.c.dlp_action,
    messages.c.dlp_findings,
    messages.c.source,
    messages.c.tags,
    messages.c.tls_required,
    messages.c.protection,
).join(tenants, tenants.c.id == messages.c.tenant_id)
_LOAD_MESSAGES = {
    False: _LOAD_SELECT.where(messages.c.id.in_(sa.bindparam("b_ids", expanding=True))),
    True: _LOAD_SELECT.where(db.any_of(messages.c.id, "b_ids")),
}
_SQLITE_LOAD_MESSAGES = DriverQuery(_LOAD_MESSAGES[False])


def record(engine: Engine, worker: str, outcomes: Sequence[RecordedOutcome]) -> int:
    """Write attempts, recipient states and events for a batch in one transaction.

    Returns how many outcomes were applied; an outcome whose lease was lost (another
    worker reclaimed it after expiry) is not applied, so the newer owner's result wins.
    """
    if not outcomes:
        return 0
    with engine.begin() as conn:
        return record_in(conn, worker, outcomes)


def record_in(conn: Connection, worker: str, outcomes: Sequence[RecordedOutcome]) -> int:
    """``record`` inside the caller's transaction, in a fixed number of statements.

    The leases still held are locked first (``FOR UPDATE``, in id order, on PostgreSQL, so
    a worker reclaiming an expired lease waits for — or skips — them); only those outcomes
    are applied, by one multi-row UPDATE that repeats the lease check.  Event sequence
    numbers are reserved per message by the event writer.
    """
    if not outcomes:
        return 0
    # One outcome per recipient: the first wins, as the row-by-row UPDATE did (the second
    # found the lease already released).
    first: dict[str, RecordedOutcome] = {}
    for out in outcomes:
        first.setdefault(out.claimed.id, out)
    if conn.dialect.name == "postgresql":
        mine = _apply_held(conn, worker, first)
    else:
        mine = _still_held(conn, worker, first)
        if mine:
            _update_recipients(conn, worker, mine)
    if not mine:
        return 0
    by_message: dict[str, list[RecordedOutcome]] = {}
    for out in mine.values():
        by_message.setdefault(out.claimed.message_id, []).append(out)
    ordered = [out for _, outs in sorted(by_message.items()) for out in outs]
    pairs = [(out, a) for out in ordered for a in (*out.prior, out.attempt)]
    # The flush's ids minted in one pass (one random read for all, not one an id).
    ids = new_ids("att", len(pairs))
    rows = [_attempt_row(i, worker, out, a) for i, (out, a) in zip(ids, pairs, strict=True)]
    # COPY on PostgreSQL, a prepared executemany on SQLite: a multi-row INSERT of a flush's
    # attempts (24 columns a row) was re-parsed by psycopg on every execution.
    db.bulk_insert(conn, attempts, rows)
    ev.write(conn, [_event(out) for out in ordered], bulk=True)
    # Hard bounces suppress, soft-fail expiry suppresses for a while, a delivery clears
    # that again: in this transaction, so the list never disagrees with the outcomes.
    suppressions.after_outcomes(conn, [_fact(mine[rid]) for rid in sorted(mine)])
    return len(mine)


# SQLite: the held leases are read, then updated by one executemany (the transaction is
# IMMEDIATE, so nothing changes in between).
_HELD = sa.select(recipients.c.id).where(
    recipients.c.lease_owner == sa.bindparam("b_worker"),
    recipients.c.status == RecipientStatus.DELIVERING,
    recipients.c.id.in_(sa.bindparam("b_ids", expanding=True)),
)
_SQLITE_HELD = DriverQuery(_HELD)


def _still_held(
    conn: Connection, worker: str, first: dict[str, RecordedOutcome]
) -> dict[str, RecordedOutcome]:
    """The outcomes whose lease this worker still holds (SQLite)."""
    owned = {r[0] for r in _SQLITE_HELD(conn, {"b_ids": sorted(first), "b_worker": worker})}
    return {rid: out for rid, out in first.items() if rid in owned}


_UPDATE_RECIPIENTS = (
    sa.update(recipients)
    .where(
        recipients.c.id == sa.bindparam("b_id"),
        recipients.c.lease_owner == sa.bindparam("b_worker"),
        recipients.c.status == RecipientStatus.DELIVERING,
    )
    .values(
        status=sa.bindparam("b_status"),
        attempts=sa.bindparam("b_attempts"),
        next_attempt_at=sa.bindparam("b_next"),
        lease_owner=None,
        lease_until=None,
        last_reason=sa.bindparam("b_reason"),
        last_detail=sa.bindparam("b_detail"),
        method=sa.bindparam("b_method"),
        method_reason=sa.bindparam("b_method_reason"),
        updated_at=sa.bindparam("b_updated"),
    )
    .execution_options(synchronize_session=False)
)


_SQLITE_UPDATE_RECIPIENTS = DriverQuery(_UPDATE_RECIPIENTS)


def _update_recipients(conn: Connection, worker: str, mine: dict[str, RecordedOutcome]) -> None:
    _SQLITE_UPDATE_RECIPIENTS.many(
        conn,
        [
            {
                "b_id": rid,
                "b_worker": worker,
                "b_status": out.status,
                "b_attempts": out.claimed.attempts + 1,
                "b_next": out.next_attempt_at or out.finished_at,
                "b_reason": out.attempt.reason,
                "b_detail": out.attempt.detail[:500],
                "b_method": out.method,
                "b_method_reason": (out.method_reason or "")[:500] or None,
                "b_updated": out.finished_at,
            }
            for rid, out in sorted(mine.items())
        ],
    )


# PostgreSQL: lock the leases still held (in id order, before anything is written: two
# writers of the same rows cannot deadlock) and apply the outcomes to exactly those, in one
# statement; the values come as one array a column (a statement per row was the flush's
# largest cost, client and server).  The UPDATE repeats the lease check.
_APPLY_HELD = sa.text(
    "WITH held AS MATERIALIZED ("
    " SELECT id FROM recipients WHERE id = ANY(CAST(:ids AS VARCHAR[]))"
    " AND lease_owner = :worker AND status = :delivering ORDER BY id FOR UPDATE)"
    " UPDATE recipients AS r SET status = v.status, attempts = v.attempts, next_attempt_at = v.next,"
    " lease_owner = NULL, lease_until = NULL, last_reason = v.reason, last_detail = v.detail,"
    " method = v.method, method_reason = v.method_reason, updated_at = v.updated"
    " FROM held JOIN unnest(CAST(:ids AS VARCHAR[]), CAST(:statuses AS VARCHAR[]),"
    " CAST(:attempts AS INTEGER[]), CAST(:nexts AS TIMESTAMPTZ[]), CAST(:reasons AS VARCHAR[]),"
    " CAST(:details AS VARCHAR[]), CAST(:methods AS VARCHAR[]), CAST(:method_reasons AS VARCHAR[]),"
    " CAST(:updated AS TIMESTAMPTZ[]))"
    " AS v(id, status, attempts, next, reason, detail, method, method_reason, updated) ON v.id = held.id"
    " WHERE r.id = held.id AND r.lease_owner = :worker AND r.status = :delivering"
    " RETURNING r.id"
)


def _apply_held(
    conn: Connection, worker: str, first: dict[str, RecordedOutcome]
) -> dict[str, RecordedOutcome]:
    """Apply the outcomes whose lease this worker still holds; returns those (PostgreSQL)."""
    ids = sorted(first)
    outs = [first[rid] for rid in ids]
    params = {
        "worker": worker,
        "delivering": str(RecipientStatus.DELIVERING),
        "ids": ids,
        "statuses": [str(o.status) for o in outs],
        "attempts": [o.claimed.attempts + 1 for o in outs],
        "nexts": [_utc(o.next_attempt_at or o.finished_at) for o in outs],
        "reasons": [o.attempt.reason for o in outs],
        "details": [o.attempt.detail[:500] for o in outs],
        "methods": [o.method for o in outs],
        "method_reasons": [(o.method_reason or "")[:500] or None for o in outs],
        "updated": [_utc(o.finished_at) for o in outs],
    }
    applied = set(conn.execute(_APPLY_HELD, params).scalars())
    return {rid: out for rid, out in first.items() if rid in applied}


def _utc(when: datetime) -> datetime:
    # As the UTC column type insists: a naive time would be read in the session's zone.
    if when.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return when


def _attempt_row(id_: str, worker: str, out: RecordedOutcome, a: Attempt) -> dict[str, Any]:
    c = out.claimed
    return {
        "id": id_,
        "tenant_id": c.tenant_id,
        "message_id": c.message_id,
        "recipient_id": c.id,
        "worker": worker,
        "started_at": out.started_at,
        # A prior attempt of the pass ended before the final one began (reading orders by time).
        "finished_at": out.finished_at if a is out.attempt else out.started_at,
        "status": str(a.status),
        "reason": a.reason,
        "detail": a.detail[:500],
        "mx_host": a.mx_host,
        "mx_ip": a.mx_ip,
        "tls_version": a.tls.version,
        "tls_cipher": a.tls.cipher,
        "tls_verified": a.tls.verified,
        "verified_by": str(a.tls.verified_by),
        "smtp_code": a.smtp_code,
        "enhanced_code": a.enhanced_code,
        "reply": (a.reply or "")[:500] or None,
        "sent_sha256": a.sent_sha256,
        "peer_cert_sha256": a.tls.peer_cert_sha256,
        "key_fingerprint": out.key_fingerprint if a is out.attempt else None,
        "key_source": out.key_source if a is out.attempt else None,
    }


def _event(out: RecordedOutcome) -> ev.NewEvent:
    a, c = out.attempt, out.claimed
    data: dict[str, Any] = {
        "attempt": c.attempts + 1,
        "reason": a.reason,
        "detail": a.detail[:500],
        "smtp": {"code": a.smtp_code, "enhanced": a.enhanced_code},
        "transport": {
            "mx_host": a.mx_host,
            "mx_ip": a.mx_ip,
            "tls": {
                "version": a.tls.version,
                "cipher": a.tls.cipher,
                "verified": a.tls.verified,
                "verified_by": str(a.tls.verified_by),
            },
        },
    }
    if out.next_attempt_at and out.status == RecipientStatus.DEFERRED:
        data["next_attempt_at"] = out.next_attempt_at.isoformat()
    if out.method:
        data["secureline"] = {"method": out.method, "reason": out.method_reason}
    if out.extra:
        data.update(out.extra)
    return ev.NewEvent(c.tenant_id, c.message_id, out.event, c.id, c.address, data, out.finished_at)


def _fact(out: RecordedOutcome) -> suppressions.DeliveryFact:
    c = out.claimed
    bounce = (out.extra or {}).get("bounce")
    classification = (
        str(bounce["classification"]) if isinstance(bounce, dict) and bounce.get("classification") else None
    )
    return suppressions.DeliveryFact(
        tenant_id=c.tenant_id,
        message_id=c.message_id,
        address=c.address,
        status=out.status,
        classification=classification,
        attempt_reason=out.attempt.reason,
        attempts=c.attempts + 1,
        replied=out.attempt.smtp_code is not None,
    )


def release(engine: Engine, worker: str, ids: Sequence[str], when: datetime) -> None:
    """Give claimed recipients back without counting an attempt (e.g. breaker open)."""
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            sa.update(recipients)
            .where(recipients.c.id.in_(list(ids)), recipients.c.lease_owner == worker)
            .values(
                status=RecipientStatus.DEFERRED,
                lease_owner=None,
                lease_until=None,
                next_attempt_at=when,
                updated_at=datetime.now(UTC),
            )
        )


# -- what destinations can do (a SecureLine fact) ---------------------------------------------
# How long a destination's recorded TLS capability is trusted (SecureLine, portal codes).
CAPABILITY_SECONDS = 3600.0


def tls_capabilities(engine: Engine, domain: str, level: str, max_age: float) -> tuple[str, str] | None:
    """The last known (state, detail) for a destination at a TLS level, if recent enough."""
    with db.reader(engine) as conn:
        return tls_capability_in(conn, domain, level, max_age)


def tls_capability_in(conn: Connection, domain: str, level: str, max_age: float) -> tuple[str, str] | None:
    """``tls_capabilities`` inside the caller's transaction."""
    cutoff = datetime.now(UTC) - timedelta(seconds=max_age)
    row = conn.execute(
        sa.select(destination_tls.c.state, destination_tls.c.detail).where(
            destination_tls.c.domain == domain,
            destination_tls.c.level == level,
            destination_tls.c.checked_at >= cutoff,
        )
    ).first()
    return (row.state, row.detail) if row else None


def record_tls_capability(engine: Engine, domain: str, level: str, state: str, detail: str) -> None:
    """Upsert: many workers learn the same fact at once, and that must not be an error."""
    now = datetime.now(UTC)
    values = {"domain": domain, "level": level, "state": state, "detail": detail[:300], "checked_at": now}
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(destination_tls).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["domain", "level"],
        set_={"state": state, "detail": detail[:300], "checked_at": now},
    )
    with engine.begin() as conn:
        conn.execute(stmt)


# -- the destination circuit breaker -------------------------------------------------------
def destination_result(
    conn: Connection, domain: str, failed: bool, threshold: int, cooldown: int, error: str = ""
) -> bool:
    """Count a destination-level success or failure; returns True when it trips."""
    now = datetime.now(UTC)
    row = conn.execute(
        sa.select(destinations.c.consecutive_failures).where(destinations.c.domain == domain)
    ).first()
    if not failed:
        if row is not None and row.consecutive_failures:
            conn.execute(
                sa.update(destinations)
                .where(destinations.c.domain == domain)
                .values(consecutive_failures=0, suspended_until=None, updated_at=now)
            )
        return False
    count = (row.consecutive_failures if row else 0) + 1
    tripped = count >= threshold
    values = {
        "consecutive_failures": count,
        "last_error": error[:500],
        "updated_at": now,
        "suspended_until": now + timedelta(seconds=cooldown) if tripped else None,
    }
    if row is None:
        conn.execute(sa.insert(destinations).values(domain=domain, **values))
    else:
        conn.execute(sa.update(destinations).where(destinations.c.domain == domain).values(**values))
    return tripped


def record_destinations(
    engine: Engine, results: dict[str, tuple[bool, str]], threshold: int, cooldown: int
) -> list[str]:
    """Apply a batch of per-domain results; returns the domains that tripped."""
    with engine.begin() as conn:
        return record_destinations_in(conn, results, threshold, cooldown)


def record_destinations_in(
    conn: Connection, results: dict[str, tuple[bool, str]], threshold: int, cooldown: int
) -> list[str]:
    """``record_destinations`` inside the caller's transaction."""
    if not any(failed for failed, _ in results.values()):
        # Every flush has successes and nearly never a failure: one statement built once
        # resets what an earlier failure counted (the rows in domain order, as one by one).
        _reset_destinations(conn, sorted(results))
        return []
    tripped = []
    for domain, (failed, error) in sorted(results.items()):
        if destination_result(conn, domain, failed, threshold, cooldown, error):
            tripped.append(domain)
    return tripped


_RESET_DESTINATIONS = (
    sa.update(destinations)
    .where(
        destinations.c.domain.in_(sa.bindparam("b_domains", expanding=True)),
        destinations.c.consecutive_failures != 0,
    )
    .values(consecutive_failures=0, suspended_until=None, updated_at=sa.bindparam("b_now"))
    .execution_options(synchronize_session=False)
)
# PostgreSQL: the rows to reset locked in domain order first, as the one-by-one UPDATEs did.
_PG_RESET_DESTINATIONS = sa.text(
    "WITH failing AS MATERIALIZED (SELECT domain FROM destinations"
    " WHERE domain = ANY(CAST(:b_domains AS VARCHAR[])) AND consecutive_failures <> 0"
    " ORDER BY domain FOR UPDATE)"
    " UPDATE destinations AS d SET consecutive_failures = 0, suspended_until = NULL, updated_at = :b_now"
    " FROM failing WHERE d.domain = failing.domain"
)


def _reset_destinations(conn: Connection, domains: list[str]) -> None:
    """A success at each of ``domains``: what ``destination_result`` does for one, for all."""
    now = datetime.now(UTC)
    reset = _PG_RESET_DESTINATIONS if conn.dialect.name == "postgresql" else _RESET_DESTINATIONS
    conn.execute(reset, {"b_domains": domains, "b_now": now})
