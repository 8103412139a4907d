"""The portal's records and the queries its use cases share: holds, challenges, sessions,
the sign-in results, the policy, and the audit helper.

Kept apart from ``access`` (the sign-in flow) so ``mailbox``, ``lifecycle`` and the file
shares read holds without the sign-in machinery.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.portal_factors import (
    NoticeStrength,
    WeakNoticePolicy,
    weak_notice_policy,
)
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.portal.tables import (
    portal_message_settings,
)
from sealmail.store.tables import messages, portal_messages, tenants

Clock = Callable[[], datetime]


def record_audit(
    conn: Connection, action: AuditAction, actor: str, tenant_id: str, target: str | None, **details: Any
) -> None:
    audit.append(
        conn,
        action=action,
        actor=actor,
        tenant_id=tenant_id,
        target=target,
        details=details,
    )


@dataclass(frozen=True, slots=True)
class PortalPolicy:
    code_digits: int = 6
    code_ttl: timedelta = timedelta(minutes=10)
    code_attempts: int = 5  # wrong entries before a code is void
    challenge_ttl: timedelta = timedelta(hours=1)
    lockout_failures: int = 5
    lockout_window: timedelta = timedelta(minutes=15)
    lockout_duration: timedelta = timedelta(minutes=30)
    codes_per_hour: int = 5
    session_idle: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=8)


class LinkState(enum.StrEnum):
    OPEN = "open"
    INVALID = "invalid"
    EXPIRED = "expired"
    RECALLED = "recalled"


class SignInStatus(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    EXPIRED = "expired"  # the challenge or code is no longer valid: start again
    THROTTLED = "throttled"  # too many codes requested
    # No code can be emailed at the message's required TLS level: use another factor.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    tenant_id: str
    message_id: str
    recipient_id: str
    address: str
    expires_at: datetime
    recalled: bool
    viewed_at: datetime | None
    requires_passphrase: bool
    shredded: bool
    # The tenant allows no emailed codes at all (``secureline.portal_require_passphrase``).
    passphrase_only: bool = False
    # The message's required TLS level, which an emailed code must meet (issue 11).
    required_tls: TlsPolicy = TlsPolicy.REQUIRE_VERIFIED
    # How the notice carrying the link travelled; None until one was delivered.
    notice_strength: NoticeStrength | None = None
    weak_notice_policy: WeakNoticePolicy = WeakNoticePolicy.REQUIRE_STRONG_FACTOR

    def state(self, now: datetime) -> LinkState:
        if self.recalled:
            return LinkState.RECALLED
        if self.shredded or self.expires_at <= now:
            return LinkState.EXPIRED
        return LinkState.OPEN


@dataclass(frozen=True, slots=True)
class Challenge:
    hold: Hold
    code_sent: bool
    locked_until: datetime | None
    # Whether "email me a code" can work: False when the code mail could not meet the
    # message's required TLS level (the page then offers the other factors).
    email_code: bool = True
    # Whether "text me a code" can work: the recipient has a number with consent to codes.
    # A texted code never travelled with the email notice, so it stands even when the
    # notice went below the required level (issue 17).
    sms_code: bool = False


@dataclass(frozen=True, slots=True)
class SignIn:
    status: SignInStatus
    session_token: str | None = None
    remaining: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    tenant_id: str
    address: str
    address_verified: bool
    unlocked: frozenset[str]

    @property
    def actor(self) -> str:
        # Names the session, never the address: audit details stay free of identifiers
        # that are PHI when combined with a clinic's name.
        return f"portal:{self.id[:16]}"

    def may_open(self, hold: Hold) -> bool:
        if hold.tenant_id != self.tenant_id or hold.address.lower() != self.address:
            return False
        return hold.message_id in self.unlocked if hold.requires_passphrase else self.address_verified


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def code_hash(challenge_token: str, code: str) -> str:
    return hmac.new(challenge_token.encode(), code.encode(), hashlib.sha256).hexdigest()


HOLD_COLUMNS = (
    portal_messages,
    portal_message_settings.c.passphrase_hash,
    portal_message_settings.c.expires_at.label("override_expires_at"),
    portal_message_settings.c.recalled_at.label("message_recalled_at"),
    messages.c.wrapped_data_key.is_(None).label("shredded"),
    tenants.c.settings.label("tenant_settings"),
)


def hold_query() -> sa.Select[Any]:
    """Holds joined with their message's sender settings and shred state."""
    return (
        sa.select(*HOLD_COLUMNS)
        .join(
            messages,
            sa.and_(
                messages.c.id == portal_messages.c.message_id,
                messages.c.tenant_id == portal_messages.c.tenant_id,
            ),
        )
        .outerjoin(
            portal_message_settings,
            sa.and_(
                portal_message_settings.c.message_id == portal_messages.c.message_id,
                portal_message_settings.c.tenant_id == portal_messages.c.tenant_id,
            ),
        )
        .join(tenants, tenants.c.id == portal_messages.c.tenant_id)
    )


def tenant_requires_passphrase(settings: Any) -> bool:
    """Tenant policy ``secureline.portal_require_passphrase``: no sign-in by emailed code.

    For organisations that will not let a code travel by mail at all: until the sender
    sets a passphrase on a message (and gives it to the patient another way), the message
    cannot be opened.
    """
    secureline = (settings or {}).get("secureline") if isinstance(settings, dict) else None
    return isinstance(secureline, dict) and bool(secureline.get("portal_require_passphrase"))


def audit_weak_notice_change(
    conn: Connection, tenant_id: str, actor: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Audit a change of ``secureline.portal_weak_notice`` in the settings transaction.

    Loosening lets sign-in codes cross channels weaker than the messages they open, so
    it gets an entry of its own (beyond the generic settings diff) naming the change.
    """
    old = weak_notice_policy(before.get("secureline"))
    new = weak_notice_policy(after.get("secureline"))
    if old is not new:
        record_audit(
            conn,
            AuditAction.PORTAL_WEAK_NOTICE_POLICY_CHANGED,
            actor,
            tenant_id,
            tenant_id,
            before=str(old),
            after=str(new),
            loosened=new is WeakNoticePolicy.ALLOW_EMAIL_CODE,
        )


def to_hold(row: Any) -> Hold:
    settings = row.tenant_settings if isinstance(row.tenant_settings, dict) else {}
    secureline = settings.get("secureline")
    return Hold(
        id=row.id,
        tenant_id=row.tenant_id,
        message_id=row.message_id,
        recipient_id=row.recipient_id,
        address=row.address,
        expires_at=row.override_expires_at or row.expires_at,
        recalled=row.recalled_at is not None or row.message_recalled_at is not None,
        viewed_at=row.viewed_at,
        requires_passphrase=row.passphrase_hash is not None
        or tenant_requires_passphrase(row.tenant_settings),
        shredded=bool(row.shredded),
        passphrase_only=tenant_requires_passphrase(row.tenant_settings),
        # Holds from before the level was recorded fail closed: the strictest usual level.
        required_tls=TlsPolicy(row.notice_required_tls or TlsPolicy.REQUIRE_VERIFIED),
        notice_strength=NoticeStrength(row.notice_strength) if row.notice_strength else None,
        weak_notice_policy=weak_notice_policy(secureline),
    )
