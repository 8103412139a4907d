"""Holding a message for the secure portal (the web app itself is a separate component).

A portal hold is per recipient: the message stays encrypted at rest, and the recipient
gets a notice with a link carrying a 256-bit random token.  Only the token's SHA-256 is
stored, so a database leak does not open anyone's messages.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail.domain.portal_factors import Channel, NoticeStrength
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
        required_tls: str | None = None,
    ) -> tuple[str, datetime]:
        """Create (or re-issue) the hold; returns (link, expiry).

        Re-issuing on a retried notice replaces the token: the old link stops working,
        which is what a recipient expects of the newest notice.  Either way the notice
        facts start empty (treated as "below the level") until ``mark_notified`` records
        how the new notice travelled: fail closed while the link is in flight.
        """
        notice = {
            "notice_required_tls": required_tls,
            "notice_tls_version": None,
            "notice_verified_by": None,
            "notice_strength": None,
        }
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
                    .values(token_hash=token_hash(token), reason=reason[:500], **notice)
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
                        **notice,
                    )
                )
        return f"{self.base_url}/p/{token}", expires

    def mark_notified(self, recipient_id: str, when: datetime, facts: NoticeFacts | None = None) -> None:
        """Record the delivered notice and the TLS facts that carried it."""
        values: dict[str, object] = {"notified_at": when}
        if facts is not None:
            values.update(
                notice_tls_version=facts.tls_version,
                notice_verified_by=facts.verified_by,
                notice_strength=str(facts.strength),
            )
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(portal_messages)
                .where(portal_messages.c.recipient_id == recipient_id)
                .values(**values)
            )


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """How one delivered notice travelled (``notice_*`` columns of the hold)."""

    required_tls: str
    tls_version: str | None
    verified_by: str | None
    strength: NoticeStrength

    def as_event(self) -> dict[str, object]:
        return {
            "channel": str(Channel.EMAIL),
            "required_tls": self.required_tls,
            "tls_version": self.tls_version,
            "verified_by": self.verified_by,
            "meets_required": self.strength is NoticeStrength.MEETS,
        }
