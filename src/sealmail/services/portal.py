"""Holding a message for the secure portal (the web app itself is a separate component).

A portal hold is per recipient: the message stays encrypted at rest, and the recipient
gets a notice with a link carrying a 256-bit random token.  Only the token's SHA-256 is
stored, so a database leak does not open anyone's messages.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail.ids import new_id
from sealmail.store.tables import portal_messages


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PortalHolds:
    def __init__(self, engine: Engine, base_url: str, default_days: int = 30) -> None:
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.default_days = default_days

    def hold(
        self,
        *,
        tenant_id: str,
        message_id: str,
        recipient_id: str,
        address: str,
        reason: str,
        now: datetime,
        days: int | None = None,
    ) -> tuple[str, datetime]:
        """Create (or re-issue) the hold; returns (link, expiry).

        Re-issuing on a retried notice replaces the token: the old link stops working,
        which is what a recipient expects of the newest notice.
        """
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(days=days or self.default_days)
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(portal_messages.c.id, portal_messages.c.expires_at).where(
                    portal_messages.c.recipient_id == recipient_id, portal_messages.c.tenant_id == tenant_id
                )
            ).first()
            if existing:
                expires = existing.expires_at
                conn.execute(
                    sa.update(portal_messages)
                    .where(portal_messages.c.id == existing.id)
                    .values(token_hash=token_hash(token), reason=reason[:500])
                )
            else:
                conn.execute(
                    sa.insert(portal_messages).values(
                        id=new_id("ptl"),
                        tenant_id=tenant_id,
                        message_id=message_id,
                        recipient_id=recipient_id,
                        address=address,
                        token_hash=token_hash(token),
                        reason=reason[:500],
                        created_at=now,
                        expires_at=expires,
                    )
                )
        return f"{self.base_url}/p/{token}", expires

    def mark_notified(self, recipient_id: str, when: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(portal_messages)
                .where(portal_messages.c.recipient_id == recipient_id)
                .values(notified_at=when)
            )
