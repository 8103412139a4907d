"""Events: every recipient state change, with a stable id and a per-message sequence."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.ids import new_id
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
    # Sent to one webhook endpoint on request; never stored as an event row.
    WEBHOOK_TEST = "webhook.test"


def next_seqs(conn: Connection, message_id: str, n: int) -> int:
    """Reserve ``n`` sequence numbers for a message; returns the first.

    The UPDATE takes the message row's lock, so concurrent workers finishing two
    recipients of one message get distinct, increasing numbers.
    """
    new_last = conn.execute(
        sa.update(messages)
        .where(messages.c.id == message_id)
        .values(event_seq=messages.c.event_seq + n)
        .returning(messages.c.event_seq)
    ).scalar_one()
    return int(new_last) - n + 1


def emit(
    conn: Connection,
    *,
    tenant_id: str,
    message_id: str,
    type_: EventType,
    recipient_id: str | None,
    recipient: str | None,
    data: dict[str, Any],
    seq: int | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    row = {
        "id": new_id("evt"),
        "tenant_id": tenant_id,
        "message_id": message_id,
        "recipient_id": recipient_id,
        "recipient": recipient,
        "type": str(type_),
        "seq": seq if seq is not None else next_seqs(conn, message_id, 1),
        "created_at": at or datetime.now(UTC),
        "data": data,
    }
    conn.execute(sa.insert(events).values(**row))
    return row


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
