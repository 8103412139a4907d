"""Events: every recipient state change, with a stable id and a per-message sequence.

Every event row is written here (``write``, or ``numbered`` + ``insert`` for a message
being created), and every sequence number comes from ``reserve``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.ids import new_id, new_ids
from sealmail.store import db
from sealmail.store.driver_query import DriverQuery
from sealmail.store.tables import events, messages


class EventType(enum.StrEnum):
    """Every event type, ``object.verb``: one enum, so the events API, webhooks and the
    rows agree on one spelling (the events API lists any stored string)."""

    ACCEPTED = "message.accepted"
    DEFERRED = "message.deferred"
    DELIVERED = "message.delivered"
    BOUNCED = "message.bounced"
    EXPIRED = "message.expired"
    REJECTED = "message.rejected"
    CANCELLED = "message.cancelled"
    QUARANTINED = "message.quarantined"
    RELEASED = "message.released"
    COMPLAINED = "message.complained"
    OPENED = "message.opened"
    CLICKED = "message.clicked"
    UNSUBSCRIBED = "recipient.unsubscribed"
    RESUBSCRIBED = "recipient.resubscribed"
    PORTAL_NOTIFIED = "portal.notified"
    PORTAL_VIEWED = "portal.viewed"
    PORTAL_ATTACHMENT_DOWNLOADED = "portal.attachment_downloaded"
    PORTAL_REPLIED = "portal.replied"
    PORTAL_EXPIRED = "portal.expired"
    PORTAL_RECALLED = "portal.recalled"
    # A sign-in code was issued (or refused), with the channel and TLS policy it uses.
    PORTAL_CODE_SENT = "portal.code_sent"
    PORTAL_CODE_REFUSED = "portal.code_refused"
    # A public form's submission was delivered as this message (issue 17); ids only.
    FORM_SUBMITTED = "form.submitted"
    # A text about this message (a portal notice, reminder or code) and what its receipt said.
    SMS_SENT = "sms.sent"
    SMS_DELIVERED = "sms.delivered"
    SMS_FAILED = "sms.failed"
    # A reported conversion (marketing: POST /v1/marketing/conversions) for a sent message.
    CONVERTED = "message.converted"
    # A journey's webhook step (marketing); ``message_id`` holds the enrollment id.
    JOURNEY_WEBHOOK = "journey.webhook"
    # Sent to one webhook endpoint on request; never stored as an event row.
    WEBHOOK_TEST = "webhook.test"


# The flags the engagement classifier sets on an event a machine made: ``machine_open`` on
# an open (an image proxy's or a scanner's fetch, Apple Mail Privacy Protection's preload),
# ``bot_suspected`` on a click.
MACHINE_FLAGS = ("machine_open", "bot_suspected")


def by_a_person() -> sa.ColumnElement[bool]:
    """True for an ``events`` row no machine flag marks: the one test of "human engagement"
    for every report, segment and journey branch (an open carries ``machine_open``, a click
    ``bot_suspected``; testing one name only counted proxies' opens as people's)."""
    return sa.and_(
        *(sa.not_(sa.func.coalesce(events.c.data[flag].as_boolean(), sa.false())) for flag in MACHINE_FLAGS)
    )


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to write; ``write`` numbers it within its message."""

    tenant_id: str
    message_id: str
    type_: EventType
    recipient_id: str | None
    recipient: str | None
    data: dict[str, Any]
    at: datetime | None = None


# Built once: every worker flush reserves numbers for the messages it recorded.  SQLite:
# one UPDATE a message (an executemany), then the new values read back.
_RESERVE = (
    sa.update(messages)
    .where(messages.c.id == sa.bindparam("b_id"))
    .values(event_seq=messages.c.event_seq + sa.bindparam("b_n"))
    .execution_options(synchronize_session=False)
)
_RESERVED = sa.select(messages.c.id, messages.c.event_seq).where(
    messages.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
# On the driver (``db.DriverQuery``): a flush's few rows made SQLAlchemy's per-execution work
# most of these statements' cost.
_SQLITE_RESERVE = DriverQuery(_RESERVE)
_SQLITE_RESERVED = DriverQuery(_RESERVED)
# PostgreSQL: one statement, the counts as arrays; the rows are locked in id order first,
# as the row-by-row UPDATEs took them, and RETURNING reads the new values back.
_PG_RESERVE = sa.text(
    "WITH locked AS MATERIALIZED ("
    " SELECT id FROM messages WHERE id = ANY(CAST(:ids AS VARCHAR[])) ORDER BY id FOR UPDATE)"
    " UPDATE messages AS m SET event_seq = m.event_seq + v.n"
    " FROM locked JOIN unnest(CAST(:ids AS VARCHAR[]), CAST(:ns AS INTEGER[])) AS v(id, n)"
    " ON v.id = locked.id"
    " WHERE m.id = locked.id RETURNING m.id, m.event_seq"
)


def reserve(conn: Connection, counts: Mapping[str, int]) -> dict[str, int]:
    """Reserve ``counts[m]`` sequence numbers for each message ``m``: message id -> the first.

    The only sequence allocator.  The UPDATE takes each message row's lock (in id order, so
    two workers finishing recipients of the same messages cannot deadlock) before the new
    values are read back inside the same transaction, so concurrent writers get distinct,
    increasing numbers.
    """
    ordered = sorted((m, n) for m, n in counts.items() if n > 0)
    if not ordered:
        return {}
    ids = [m for m, _ in ordered]
    if conn.dialect.name == "postgresql":
        last = dict(conn.execute(_PG_RESERVE, {"ids": ids, "ns": [n for _, n in ordered]}).all())
    else:
        _SQLITE_RESERVE.many(conn, [{"b_id": m, "b_n": n} for m, n in ordered])
        last = dict(_SQLITE_RESERVED(conn, {"b_ids": ids}))  # (id, seq) pairs
    return {m: int(last[m]) - n + 1 for m, n in ordered}


def next_seqs(conn: Connection, message_id: str, n: int) -> int:
    """Reserve ``n`` sequence numbers for one message; returns the first."""
    return reserve(conn, {message_id: n})[message_id]


def numbered(items: Sequence[NewEvent], first: int = 1) -> list[dict[str, Any]]:
    """Rows for events of one brand-new message, numbered from ``first``.

    For a message inserted in the same transaction with ``event_seq`` already counting
    these rows (intake), so no number needs reserving; anything else goes through ``write``.
    """
    return [_row(e, first + i) for i, e in enumerate(items)]


# Prepared once: every accepted batch and every flush inserts (``db.RowInsert``: one short
# statement for any number of rows, straight to the driver).
_INSERT = db.RowInsert(events)


def insert(conn: Connection, rows: Sequence[dict[str, Any]], *, bulk: bool = False) -> None:
    """Insert rows built by ``numbered`` (one ``executemany``; with ``bulk``, ``db.bulk_insert``)."""
    if not rows:
        return
    if bulk:
        db.bulk_insert(conn, events, list(rows))
    else:
        _INSERT(conn, list(rows))


def write(conn: Connection, items: Sequence[NewEvent], *, bulk: bool = False) -> list[dict[str, Any]]:
    """Write events inside the caller's transaction: the one event writer.

    Numbers are reserved per message (``reserve``) and handed out in the given order.
    ``bulk`` loads the rows with ``db.bulk_insert`` (COPY on PostgreSQL) instead of one
    multi-row INSERT: the worker's flushes, whose dozens of rows made psycopg parse a
    statement of hundreds of placeholders on every execution (it caches none over 50).
    """
    if not items:
        return []
    counts: dict[str, int] = {}
    for e in items:
        counts[e.message_id] = counts.get(e.message_id, 0) + 1
    nxt = reserve(conn, counts)
    rows = []
    # Ids minted in one pass for the batch (a flush writes one event per outcome).
    for e, id_ in zip(items, new_ids("evt", len(items)), strict=True):
        rows.append(_row(e, nxt[e.message_id], id_))
        nxt[e.message_id] += 1
    insert(conn, rows, bulk=bulk)
    return rows


def emit(
    conn: Connection,
    *,
    tenant_id: str,
    message_id: str,
    type_: EventType,
    recipient_id: str | None,
    recipient: str | None,
    data: dict[str, Any],
    at: datetime | None = None,
) -> dict[str, Any]:
    """Write one event (``write`` for one)."""
    [row] = write(conn, [NewEvent(tenant_id, message_id, type_, recipient_id, recipient, data, at)])
    return row


def _row(e: NewEvent, seq: int, id_: str | None = None) -> dict[str, Any]:
    return {
        "id": id_ or new_id("evt"),
        "tenant_id": e.tenant_id,
        "message_id": e.message_id,
        "recipient_id": e.recipient_id,
        "recipient": e.recipient,
        "type": str(e.type_),
        "seq": seq,
        "created_at": e.at or datetime.now(UTC),
        "data": e.data,
    }


def render(row: Any) -> dict[str, Any]:
    """The public shape of an event (API and, later, webhooks)."""
    return {
        "id": row["id"],
        "type": row["type"],
        "message_id": row["message_id"],
        "recipient_id": row["recipient_id"],
        "recipient": row["recipient"],
        "sequence": row["seq"],
        "created_at": row["created_at"].isoformat(),
        "data": row["data"],
    }
