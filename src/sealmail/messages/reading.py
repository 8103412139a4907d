"""Reading messages: one message with its recipients and attempts, its content (audited),
search, and the events feed.  A mixin of ``Messages``, which holds the engine and keyring.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain import message as mime
from sealmail.domain.page import Page
from sealmail.domain.statuses import aggregate
from sealmail.errors import NotFound
from sealmail.messages.views import (
    AttemptInfo,
    MessageDetail,
    MessageSummary,
    attempt_info,
    message_detail,
    message_summary,
    recipient_delivery,
)
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import attempts, events, message_tags, messages, recipients
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Principal

# Everything but the ciphertext: listing messages never drags content blobs along.
META = [c for c in messages.c if c.name not in ("content", "wrapped_data_key")]


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of the events feed, oldest first."""

    # Each event in its public shape (``store.events.render``): the wire format the API
    # and webhooks share, open per event type.
    data: tuple[dict[str, Any], ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class MessageContent:
    """A message's decrypted content (reading it is audited)."""

    id: str
    subject: str
    from_: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    text: str | None
    html: str | None
    # filename, content_type, size (and undisplayed: true past a display limit), as parsed.
    attachments: tuple[dict[str, Any], ...]
    problems: tuple[str, ...]


class Reading:
    engine: Engine
    keyring: Keyring

    # -- read --------------------------------------------------------------------------------
    def get(self, who: Principal, message_id: str) -> MessageDetail:
        with db.reader(self.engine) as conn:
            msg = (
                conn.execute(
                    sa.select(*META).where(messages.c.id == message_id, messages.c.tenant_id == who.tenant_id)
                )
                .mappings()
                .first()
            )
            if msg is None:
                raise NotFound(f"message {message_id} not found")
            rcpts = (
                conn.execute(
                    sa.select(recipients)
                    .where(recipients.c.message_id == message_id, recipients.c.tenant_id == who.tenant_id)
                    .order_by(recipients.c.id)
                )
                .mappings()
                .all()
            )
            tries = (
                conn.execute(
                    sa.select(attempts)
                    .where(attempts.c.message_id == message_id, attempts.c.tenant_id == who.tenant_id)
                    .order_by(attempts.c.started_at)
                )
                .mappings()
                .all()
            )
            opens = _portal_opens(conn, who.tenant_id, message_id)
        by_rcpt: dict[str, list[AttemptInfo]] = {}
        for a in tries:
            by_rcpt.setdefault(a["recipient_id"], []).append(attempt_info(a))
        counts: dict[str, int] = {}
        for r in rcpts:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        shown = (recipient_delivery(r, tuple(by_rcpt.get(r["id"], [])), opens.get(r["id"], 0)) for r in rcpts)
        return message_detail(msg, str(aggregate(msg["status"], counts)), tuple(shown))

    def content(self, who: Principal, message_id: str) -> MessageContent:
        """Decrypt and return a message's content; every call is audited."""
        with self.engine.begin() as conn:
            msg = conn.execute(
                sa.select(messages.c.tenant_key_id, messages.c.wrapped_data_key, messages.c.content).where(
                    messages.c.id == message_id, messages.c.tenant_id == who.tenant_id
                )
            ).first()
            if msg is None:
                raise NotFound(f"message {message_id} not found")
            if msg.wrapped_data_key is None:
                raise NotFound(f"message {message_id}'s content has been destroyed")
            audit.append(
                conn,
                action=AuditAction.MESSAGE_CONTENT_READ,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=message_id,
            )
        raw = self.keyring.open(
            who.tenant_id, message_id, msg.tenant_key_id, msg.wrapped_data_key, msg.content
        )
        parsed = mime.parse_content(raw)
        return MessageContent(
            id=message_id,
            subject=parsed.subject,
            from_=parsed.from_,
            to=tuple(parsed.to),
            cc=tuple(parsed.cc),
            text=parsed.text,
            html=parsed.html,
            attachments=tuple(parsed.attachments),
            problems=tuple(parsed.problems),
        )

    def search(
        self,
        who: Principal,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        recipient: str | None = None,
        tag: str | None = None,
        stream: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[MessageSummary]:
        """Newest first; ``cursor`` is the last id of the previous page."""
        q = _search_query(who.tenant_id, cursor, status, recipient, tag, stream, since, until)
        with db.reader(self.engine) as conn:
            ids = [r.id for r in conn.execute(q.order_by(messages.c.id.desc()).limit(limit + 1))]
            rows = (
                conn.execute(
                    sa.select(*META)
                    .where(messages.c.id.in_(ids), messages.c.tenant_id == who.tenant_id)
                    .order_by(messages.c.id.desc())
                )
                .mappings()
                .all()
                if ids
                else []
            )
            page = rows[:limit]
            counts = _status_counts(conn, who.tenant_id, [p["id"] for p in page])
        found = tuple(
            message_summary(r, str(aggregate(r["status"], counts.get(r["id"], {}))), counts.get(r["id"], {}))
            for r in page
        )
        more = len(rows) > limit
        return Page(found, page[-1]["id"] if more and page else None)

    # -- events ------------------------------------------------------------------------------
    def list_events(
        self,
        who: Principal,
        *,
        limit: int = 100,
        cursor: str | None = None,
        type_: str | None = None,
        message_id: str | None = None,
        recipient: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> EventPage:
        """Oldest first, as a feed; ``cursor`` is the last id already seen."""
        q = sa.select(events).where(events.c.tenant_id == who.tenant_id)
        if cursor:
            q = q.where(events.c.id > cursor)
        if type_:
            q = q.where(events.c.type.in_(type_.split(",")))
        if message_id:
            q = q.where(events.c.message_id == message_id)
        if recipient:
            q = q.where(sa.func.lower(events.c.recipient) == recipient.lower())
        if since:
            q = q.where(events.c.created_at >= since)
        if until:
            q = q.where(events.c.created_at < until)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q.order_by(events.c.id).limit(limit + 1)).mappings().all()
        page = rows[:limit]
        return EventPage(
            data=tuple(ev.render(r) for r in page),
            next_cursor=page[-1]["id"] if len(rows) > limit and page else None,
        )


def _status_counts(conn: Connection, tenant_id: str, ids: list[str]) -> dict[str, dict[str, int]]:
    """Message id -> recipients per status, for one page of a search."""
    counts: dict[str, dict[str, int]] = {}
    if not ids:
        return counts
    for r in conn.execute(
        sa.select(recipients.c.message_id, recipients.c.status, sa.func.count())
        .where(recipients.c.message_id.in_(ids), recipients.c.tenant_id == tenant_id)
        .group_by(recipients.c.message_id, recipients.c.status)
    ):
        counts.setdefault(r[0], {})[r[1]] = int(r[2])
    return counts


def _portal_opens(conn: Connection, tenant_id: str, message_id: str) -> dict[str, int]:
    """How often each recipient opened the message in the portal (``portal.viewed`` events)."""
    rows = conn.execute(
        sa.select(events.c.recipient_id, sa.func.count())
        .where(
            events.c.tenant_id == tenant_id,
            events.c.message_id == message_id,
            events.c.type == ev.EventType.PORTAL_VIEWED,
        )
        .group_by(events.c.recipient_id)
    ).all()
    return {str(rid): int(n) for rid, n in rows}


def _search_query(
    tenant_id: str,
    cursor: str | None,
    status: str | None,
    recipient: str | None,
    tag: str | None,
    stream: str | None,
    since: datetime | None,
    until: datetime | None,
) -> sa.Select[Any]:
    """The ids a search matches, every filter bound to the tenant."""
    q = sa.select(messages.c.id).where(messages.c.tenant_id == tenant_id)
    if cursor:
        q = q.where(messages.c.id < cursor)
    if stream:
        q = q.where(messages.c.stream == stream)
    if since:
        q = q.where(messages.c.created_at >= since)
    if until:
        q = q.where(messages.c.created_at < until)
    if tag:
        q = q.where(
            messages.c.id.in_(
                sa.select(message_tags.c.message_id).where(
                    message_tags.c.tenant_id == tenant_id, message_tags.c.tag == tag
                )
            )
        )
    if recipient or status:
        sub = sa.select(recipients.c.message_id).where(recipients.c.tenant_id == tenant_id)
        if recipient:
            sub = sub.where(sa.func.lower(recipients.c.address) == recipient.lower())
        if status:
            sub = sub.where(recipients.c.status == status)
        q = q.where(messages.c.id.in_(sub))
    return q
