"""The sender's side of portal messages: settings, recall, listing, expiry and shredding.

Crypto-shredding rule (architecture.md, "Destroying a message's data key crypto-shreds
that message"): a message's data key is destroyed when

* every portal hold of it is closed — expired or recalled — and
* every other recipient is terminal (delivered, bounced, expired, cancelled, rejected),

because until then a worker may still need the plaintext to deliver to someone else.
Metadata (rows, events, audit) stays for the audit trail.  Replies sent from the
portal thread are shredded with it once their own delivery is terminal.  ``sweep``
applies the rule on a schedule; ``recall`` applies it at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Connection, Engine

from sealmail.audit import AuditAction
from sealmail.domain.portal_factors import NoticeStrength
from sealmail.domain.statuses import TERMINAL
from sealmail.engagement.tables import tracked_links
from sealmail.errors import NotFound, ValidationFailed
from sealmail.evidence.retention import is_held
from sealmail.messages.service import cancel_waiting
from sealmail.portal.access import (
    Hold,
    LinkState,
    hold_query,
    record_audit,
    to_hold,
)
from sealmail.portal.mailbox import emit
from sealmail.portal.tables import portal_hold_states, portal_message_settings, portal_replies
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import messages, portal_messages, recipients
from sealmail.tenancy.service import Principal

UNSET: Any = object()
MIN_PASSPHRASE = 8


@dataclass(frozen=True, slots=True)
class SweepResult:
    notified: int
    expired: int
    shredded: int


def _now() -> datetime:
    return datetime.now(UTC)


class PortalLifecycle:
    def __init__(self, engine: Engine, hasher: PasswordHasher) -> None:
        self.engine = engine
        self.hasher = hasher

    # -- sender settings ----------------------------------------------------------------------
    def _message_exists(self, conn: Connection, tenant_id: str, message_id: str) -> None:
        found = conn.execute(
            sa.select(messages.c.id).where(messages.c.id == message_id, messages.c.tenant_id == tenant_id)
        ).first()
        if found is None:
            raise NotFound(f"message {message_id} not found")

    def _upsert_settings(self, conn: Connection, tenant_id: str, message_id: str, **values: Any) -> None:
        key = (portal_message_settings.c.tenant_id == tenant_id) & (
            portal_message_settings.c.message_id == message_id
        )
        values["updated_at"] = _now()
        if conn.execute(sa.select(portal_message_settings.c.message_id).where(key)).first() is None:
            conn.execute(
                sa.insert(portal_message_settings).values(
                    tenant_id=tenant_id, message_id=message_id, **values
                )
            )
        else:
            conn.execute(sa.update(portal_message_settings).where(key).values(**values))

    def configure(
        self,
        tenant_id: str,
        message_id: str,
        actor: str,
        *,
        expires_at: datetime | None = UNSET,
        passphrase: str | None = UNSET,
    ) -> PortalStatus:
        """Change a message's portal expiry and/or passphrase (``None`` clears either)."""
        values: dict[str, Any] = {}
        if expires_at is not UNSET:
            if expires_at is not None and expires_at.tzinfo is None:
                raise ValidationFailed([{"field": "expires_at", "message": "needs a timezone offset"}])
            values["expires_at"] = expires_at
        if passphrase is not UNSET:
            if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
                raise ValidationFailed(
                    [{"field": "passphrase", "message": f"must be at least {MIN_PASSPHRASE} characters"}]
                )
            values["passphrase_hash"] = self.hasher.hash(passphrase) if passphrase is not None else None
        with self.engine.begin() as conn:
            self._message_exists(conn, tenant_id, message_id)
            if values:
                self._upsert_settings(conn, tenant_id, message_id, **values)
                changed = sorted(values)
                record_audit(
                    conn, AuditAction.PORTAL_SETTINGS_CHANGED, actor, tenant_id, message_id, changed=changed
                )
        return self.describe(tenant_id, message_id)

    def describe(self, tenant_id: str, message_id: str) -> PortalStatus:
        """The message's portal settings and every hold with its state (tenant-scoped)."""
        now = _now()
        with db.reader(self.engine) as conn:
            self._message_exists(conn, tenant_id, message_id)
            settings = conn.execute(
                sa.select(portal_message_settings).where(
                    portal_message_settings.c.tenant_id == tenant_id,
                    portal_message_settings.c.message_id == message_id,
                )
            ).first()
            rows = conn.execute(
                hold_query()
                .where(portal_messages.c.tenant_id == tenant_id, portal_messages.c.message_id == message_id)
                .order_by(portal_messages.c.created_at)
            ).all()
        return PortalStatus(
            message_id=message_id,
            requires_passphrase=bool(settings and settings.passphrase_hash),
            expires_at=settings.expires_at if settings else None,
            recalled_at=settings.recalled_at if settings else None,
            shredded_at=settings.shredded_at if settings else None,
            recipients=tuple(HoldView.from_row(r, now) for r in rows),
        )

    # -- recall -------------------------------------------------------------------------------
    def recall(self, tenant_id: str, message_id: str, actor: str) -> Recalled:
        """Revoke portal access for every portal recipient, before or after reading.

        Recipients not yet tried or waiting to retry are cancelled in the same transaction
        (``messages.service.cancel_waiting``): nothing more leaves for a recalled message.
        A hold created later anyway (a copy in flight) is closed too: the recall is stored
        on the message.  The content is shredded at once when no other recipient still
        needs it, otherwise by the next ``sweep``.
        """
        now = _now()
        with self.engine.begin() as conn:
            self._message_exists(conn, tenant_id, message_id)
            cancelled = cancel_waiting(conn, Principal(tenant_id, actor, frozenset()), message_id, now)
            self._upsert_settings(conn, tenant_id, message_id, recalled_at=now)
            holds = [
                to_hold(r)
                for r in conn.execute(
                    hold_query().where(
                        portal_messages.c.tenant_id == tenant_id,
                        portal_messages.c.message_id == message_id,
                        portal_messages.c.recalled_at.is_(None),
                    )
                )
            ]
            conn.execute(
                sa.update(portal_messages)
                .where(
                    portal_messages.c.tenant_id == tenant_id,
                    portal_messages.c.message_id == message_id,
                    portal_messages.c.recalled_at.is_(None),
                )
                .values(recalled_at=now)
            )
            for hold in holds:
                emit(conn, hold, ev.EventType.PORTAL_RECALLED, {"viewed": hold.viewed_at is not None}, now)
            record_audit(
                conn, AuditAction.PORTAL_RECALLED, actor, tenant_id, message_id, recipients=len(holds)
            )
            shredded = self._shred_if_done(conn, tenant_id, message_id, now)
        return Recalled(self.describe(tenant_id, message_id), len(holds), shredded, len(cancelled))

    # -- expiry and shredding -----------------------------------------------------------------
    def sweep(self, now: datetime | None = None) -> SweepResult:
        """Emit pending ``portal.notified``/``portal.expired`` events and shred what is done."""
        now = now or _now()
        notified = expired = shredded = 0
        with self.engine.begin() as conn:
            rows = conn.execute(
                hold_query()
                .add_columns(
                    portal_hold_states.c.notified_event_at, portal_hold_states.c.expired_at.label("ex_at")
                )
                .outerjoin(portal_hold_states, portal_hold_states.c.portal_message_id == portal_messages.c.id)
            ).all()
            touched: set[tuple[str, str]] = set()
            for row in rows:
                hold = to_hold(row)
                state: dict[str, Any] = {}
                if row.notified_at is not None and row.notified_event_at is None:
                    emit(
                        conn,
                        hold,
                        ev.EventType.PORTAL_NOTIFIED,
                        {"notice": notice_facts(row)},
                        row.notified_at,
                    )
                    state["notified_event_at"] = now
                    notified += 1
                if not hold.recalled and hold.expires_at <= now and row.ex_at is None:
                    emit(conn, hold, ev.EventType.PORTAL_EXPIRED, {"viewed": hold.viewed_at is not None}, now)
                    record_audit(
                        conn,
                        AuditAction.PORTAL_EXPIRED,
                        "system:portal-sweep",
                        hold.tenant_id,
                        hold.message_id,
                    )
                    state["expired_at"] = now
                    expired += 1
                if state:
                    self._mark(conn, hold, row.notified_event_at is None and row.ex_at is None, state)
                if hold.state(now) is not LinkState.OPEN and not hold.shredded:
                    touched.add((hold.tenant_id, hold.message_id))
            for tenant_id, message_id in sorted(touched):
                shredded += self._shred_if_done(conn, tenant_id, message_id, now)
        return SweepResult(notified, expired, shredded)

    @staticmethod
    def _mark(conn: Connection, hold: Hold, maybe_new: bool, values: dict[str, Any]) -> None:
        key = portal_hold_states.c.portal_message_id == hold.id
        exists = conn.execute(sa.select(portal_hold_states.c.portal_message_id).where(key)).first()
        if exists is None:
            conn.execute(
                sa.insert(portal_hold_states).values(
                    portal_message_id=hold.id, tenant_id=hold.tenant_id, message_id=hold.message_id, **values
                )
            )
        else:
            conn.execute(sa.update(portal_hold_states).where(key).values(**values))

    def _shred_if_done(self, conn: Connection, tenant_id: str, message_id: str, now: datetime) -> bool:
        if is_held(conn, tenant_id, message_id):
            return False  # a legal hold outranks the portal's shredding (evidence/retention.py)
        holds = [
            to_hold(r)
            for r in conn.execute(
                hold_query().where(
                    portal_messages.c.tenant_id == tenant_id, portal_messages.c.message_id == message_id
                )
            )
        ]
        if not holds or any(h.shredded for h in holds) or any(h.state(now) is LinkState.OPEN for h in holds):
            return False
        held = {h.recipient_id for h in holds}
        if not self._all_terminal(conn, tenant_id, message_id, exclude=held):
            return False
        conn.execute(
            sa.update(messages)
            .where(messages.c.id == message_id, messages.c.tenant_id == tenant_id)
            .values(wrapped_data_key=None)
        )
        # Tracked link URLs are sealed apart from the content but can carry the same PHI
        # (query strings): shredding the message drops them too; a later click gets a 404.
        conn.execute(
            sa.delete(tracked_links).where(
                tracked_links.c.message_id == message_id, tracked_links.c.tenant_id == tenant_id
            )
        )
        reply_ids = conn.execute(
            sa.select(portal_replies.c.reply_message_id).where(
                portal_replies.c.tenant_id == tenant_id,
                portal_replies.c.portal_message_id.in_([h.id for h in holds]),
            )
        ).scalars()
        done_replies = [r for r in reply_ids if self._all_terminal(conn, tenant_id, r, exclude=set())]
        if done_replies:
            conn.execute(
                sa.update(messages)
                .where(messages.c.id.in_(done_replies), messages.c.tenant_id == tenant_id)
                .values(wrapped_data_key=None)
            )
        self._upsert_settings(conn, tenant_id, message_id, shredded_at=now)
        record_audit(
            conn,
            AuditAction.PORTAL_SHREDDED,
            "system:portal",
            tenant_id,
            message_id,
            replies_shredded=len(done_replies),
        )
        return True

    @staticmethod
    def _all_terminal(conn: Connection, tenant_id: str, message_id: str, exclude: set[str]) -> bool:
        statuses = conn.execute(
            sa.select(recipients.c.id, recipients.c.status).where(
                recipients.c.message_id == message_id, recipients.c.tenant_id == tenant_id
            )
        ).all()
        return all(s.status in TERMINAL for s in statuses if s.id not in exclude)

    def expire_now(self, tenant_id: str, message_id: str, actor: str) -> PortalStatus:
        """End portal access now by moving the expiry to the present, then sweep."""
        now = _now()
        self.configure(tenant_id, message_id, actor, expires_at=now - timedelta(seconds=1))
        self.sweep(now)
        return self.describe(tenant_id, message_id)


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """How a hold's notice travelled (``portal_messages.notice_*``)."""

    channel: str
    required_tls: str | None
    tls_version: str | None  # None: plaintext
    verified_by: str | None
    meets_required: bool

    @classmethod
    def from_row(cls, row: Any) -> NoticeFacts | None:
        """None before a notice was delivered."""
        if row.notice_strength is None:
            return None
        return cls(
            "email",
            row.notice_required_tls,
            row.notice_tls_version,
            row.notice_verified_by,
            row.notice_strength == NoticeStrength.MEETS,
        )


@dataclass(frozen=True, slots=True)
class HoldView:
    """One portal recipient of a message and the state of its hold."""

    id: str
    recipient_id: str
    email: str
    state: str
    created_at: datetime | None
    expires_at: datetime | None
    notified_at: datetime | None
    viewed_at: datetime | None
    recalled_at: datetime | None
    requires_passphrase: bool
    content_destroyed: bool
    notice: NoticeFacts | None

    @classmethod
    def from_row(cls, row: Any, now: datetime) -> HoldView:
        hold = to_hold(row)
        return cls(
            id=hold.id,
            recipient_id=hold.recipient_id,
            email=hold.address,
            state=str(hold.state(now)),
            created_at=row.created_at,
            expires_at=hold.expires_at,
            notified_at=row.notified_at,
            viewed_at=row.viewed_at,
            recalled_at=row.recalled_at,
            requires_passphrase=hold.requires_passphrase,
            content_destroyed=hold.shredded,
            notice=NoticeFacts.from_row(row),
        )


@dataclass(frozen=True, slots=True)
class PortalStatus:
    """A message's portal settings and every hold with its state."""

    message_id: str
    requires_passphrase: bool
    expires_at: datetime | None
    recalled_at: datetime | None
    shredded_at: datetime | None
    recipients: tuple[HoldView, ...]


@dataclass(frozen=True, slots=True)
class Recalled:
    """A recall: the message's status after it, how many lost access, whether it is shredded."""

    status: PortalStatus
    recalled: int
    shredded: bool
    cancelled: int = 0  # recipients not yet sent to, cancelled by the recall


def notice_facts(row: Any) -> dict[str, Any] | None:
    """``NoticeFacts`` as the data of a portal event (free-form event JSON)."""
    facts = NoticeFacts.from_row(row)
    return dataclasses.asdict(facts) if facts is not None else None
