"""A sender's own messages: what they sent from the console or with API keys they made.

A sender sees only these (issue 14: "sees only their own messages").  Ownership is the
message's ``actor`` — the console user (``user:<id>``) for compose, or the id of an API
key that user created (``console_api_keys``) — so nothing extra is stored per message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail.console.reports import own_actors
from sealmail.domain.statuses import aggregate
from sealmail.store import db
from sealmail.store.tables import messages, recipients
from sealmail.users.model import Session

SENT_PAGE = 50


@dataclass(frozen=True, slots=True)
class SentMessage:
    id: str
    created_at: datetime
    header_from: str
    protection: str
    status: str
    recipients: dict[str, int]  # recipient status -> how many


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _actors(self, conn: Connection, who: Session) -> list[str]:
        return own_actors(conn, who)

    def owns(self, who: Session, message_id: str) -> bool:
        with db.reader(self.engine) as conn:
            actor = conn.execute(
                sa.select(messages.c.actor).where(
                    messages.c.tenant_id == who.tenant_id, messages.c.id == message_id
                )
            ).scalar_one_or_none()
            return actor is not None and actor in self._actors(conn, who)

    def sent(self, who: Session, before: str | None = None) -> list[SentMessage]:
        """The user's messages, newest first, a page at a time (``before``: a message id)."""
        with db.reader(self.engine) as conn:
            mine = messages.c.actor.in_(self._actors(conn, who))
            stmt = sa.select(
                messages.c.id, messages.c.created_at, messages.c.header_from, messages.c.protection,
                messages.c.status,
            ).where(messages.c.tenant_id == who.tenant_id, mine)  # fmt: skip
            if before:
                stmt = stmt.where(messages.c.id < before)
            rows = conn.execute(stmt.order_by(messages.c.id.desc()).limit(SENT_PAGE)).all()
            counts: dict[str, Counter[str]] = {r.id: Counter() for r in rows}
            if rows:
                for mid, status, n in conn.execute(
                    sa.select(recipients.c.message_id, recipients.c.status, sa.func.count())
                    .where(recipients.c.tenant_id == who.tenant_id, recipients.c.message_id.in_(list(counts)))
                    .group_by(recipients.c.message_id, recipients.c.status)
                ):
                    counts[mid][status] += int(n)
        return [
            SentMessage(
                r.id,
                r.created_at,
                r.header_from,
                r.protection,
                str(aggregate(r.status, counts[r.id])),
                dict(counts[r.id]),
            )
            for r in rows
        ]
