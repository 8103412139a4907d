"""Who may open a portal message: links, one-time codes, passphrases, lockout, sessions.

The flow a recipient follows:

1. ``open_link(token)``: the token from the notice (256 bits, stored hashed by
   ``PortalHolds``) is exchanged for a *challenge* — a fresh 256-bit token the web app
   keeps in an HttpOnly cookie — so the link token leaves the address bar at once.
2. ``send_code`` mails a 6-digit one-time code to the hold's address (PHI-free mail
   through the normal pipeline); or, when the sender set one, the recipient types the
   passphrase.
3. ``verify_code`` / ``verify_passphrase`` either start a session (another 256-bit
   token, stored hashed) or count a failure against the (tenant, address); enough
   failures in the window lock the address out for a while (HIPAA §164.308(a)(5)(ii)(C)
   log-in monitoring).  Every failure is audited.
4. ``session`` enforces the idle timeout and the absolute lifetime on every request
   (§164.312(a)(2)(iii) automatic logoff).

Outcomes a recipient can cause are values (``SignIn``), not exceptions.  Times come from
an injected clock so tests can move past idle and absolute limits without sleeping.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine

from sealmail.audit import AuditAction
from sealmail.domain.addresses import parse_address
from sealmail.domain.portal_factors import (
    Channel,
    CodeMailPlan,
    WeakNoticePolicy,
    plan_code_mail,
)
from sealmail.domain.secureline import TlsState
from sealmail.messages import queue
from sealmail.messages.service import Messages
from sealmail.portal.code_mail import CodeMail
from sealmail.portal.holds import token_hash
from sealmail.portal.records import (
    HOLD_COLUMNS,
    Challenge,
    Clock,
    Hold,
    LinkState,
    PortalPolicy,
    Session,
    SignIn,
    SignInStatus,
    audit_weak_notice_change,
    code_hash,
    hold_query,
    record_audit,
    sha256_hex,
    tenant_requires_passphrase,
    to_hold,
)
from sealmail.portal.tables import (
    portal_challenges,
    portal_lockouts,
    portal_message_settings,
    portal_sessions,
)
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import messages, portal_messages, tenants

# The records are imported from here too (the sign-in flow is where they began).
__all__ = [
    "HOLD_COLUMNS",
    "Challenge",
    "Clock",
    "Hold",
    "LinkState",
    "PortalAccess",
    "PortalPolicy",
    "Session",
    "SignIn",
    "SignInStatus",
    "audit_weak_notice_change",
    "hold_query",
    "record_audit",
    "tenant_requires_passphrase",
    "to_hold",
]


class CodeTexter(Protocol):
    """Sign-in codes by SMS (``sms.notices.PortalTexts``): a factor that did not travel
    with the email notice."""

    def number_for(self, tenant_id: str, address: str) -> str | None: ...
    def queue_code(
        self, *, tenant_id: str, number: str, organization: str, code: str, message_id: str, recipient_id: str
    ) -> bool: ...


class PortalAccess(CodeMail):
    def __init__(
        self,
        engine: Engine,
        messages_service: Messages,
        hasher: PasswordHasher,
        *,
        policy: PortalPolicy | None = None,
        clock: Clock | None = None,
        message_id_domain: str = "sealmail.invalid",
        texter: CodeTexter | None = None,
    ) -> None:
        self.engine = engine
        self.texter = texter
        self.messages = messages_service
        self.hasher = hasher
        self.policy = policy or PortalPolicy()
        self.now: Clock = clock or (lambda: datetime.now(UTC))
        self.message_id_domain = message_id_domain

    # -- link → challenge ---------------------------------------------------------------------
    def open_link(self, token: str) -> tuple[LinkState, str | None]:
        """Exchange a notice link's token for a challenge token (when the hold is open)."""
        now = self.now()
        with self.engine.begin() as conn:
            row = conn.execute(hold_query().where(portal_messages.c.token_hash == token_hash(token))).first()
            if row is None:
                return LinkState.INVALID, None
            hold = to_hold(row)
            state = hold.state(now)
            if state is not LinkState.OPEN:
                return state, None
            challenge = secrets.token_urlsafe(32)
            conn.execute(
                sa.insert(portal_challenges).values(
                    id=sha256_hex(challenge),
                    tenant_id=hold.tenant_id,
                    portal_message_id=hold.id,
                    address=hold.address,
                    created_at=now,
                    expires_at=now + self.policy.challenge_ttl,
                    code_attempts=0,
                )
            )
        return LinkState.OPEN, challenge

    def hold(self, conn: Connection, hold_id: str, tenant_id: str | None = None) -> Hold | None:
        q = hold_query().where(portal_messages.c.id == hold_id)
        if tenant_id is not None:
            q = q.where(portal_messages.c.tenant_id == tenant_id)
        row = conn.execute(q).first()
        return to_hold(row) if row else None

    def challenge(self, challenge_token: str) -> Challenge | None:
        now = self.now()
        with db.reader(self.engine) as conn:
            ch = self._challenge_row(conn, challenge_token, now)
            if ch is None:
                return None
            hold = self.hold(conn, ch.portal_message_id, ch.tenant_id)
            if hold is None:
                return None
            lock = self._locked_until(conn, ch.tenant_id, ch.address, now)
            plan = self.code_plan(conn, hold)
        sms = self.sms_number(hold) is not None and not hold.passphrase_only
        return Challenge(hold, ch.code_hash is not None, lock, email_code=plan.send, sms_code=sms)

    def sms_number(self, hold: Hold) -> str | None:
        """Where a code may be texted for ``hold``, or None (no texter, no number, no consent)."""
        return self.texter.number_for(hold.tenant_id, hold.address) if self.texter else None

    def code_plan(self, conn: Connection, hold: Hold) -> CodeMailPlan:
        """How a sign-in code for ``hold`` would be mailed (``domain.portal_factors``)."""
        fails = False
        if hold.weak_notice_policy is WeakNoticePolicy.REQUIRE_STRONG_FACTOR:
            domain = parse_address(hold.address, "to").ascii_domain
            known = queue.tls_capability_in(conn, domain, str(hold.required_tls), queue.CAPABILITY_SECONDS)
            fails = known is not None and known[0] == TlsState.FAILS
        return plan_code_mail(hold.weak_notice_policy, hold.required_tls, fails)

    def _challenge_row(self, conn: Connection, token: str, now: datetime) -> Any:
        row = conn.execute(
            sa.select(portal_challenges).where(portal_challenges.c.id == sha256_hex(token))
        ).first()
        if row is None or row.used_at is not None or row.expires_at <= now:
            return None
        return row

    # -- lockout ------------------------------------------------------------------------------
    def _lock_row(self, conn: Connection, tenant_id: str, address: str) -> Any:
        return conn.execute(
            sa.select(portal_lockouts).where(
                portal_lockouts.c.tenant_id == tenant_id, portal_lockouts.c.address == address.lower()
            )
        ).first()

    def _locked_until(self, conn: Connection, tenant_id: str, address: str, now: datetime) -> datetime | None:
        row = self._lock_row(conn, tenant_id, address)
        if row is None or row.locked_until is None or row.locked_until <= now:
            return None
        return row.locked_until  # type: ignore[no-any-return]  # UtcDateTime column

    def _fail(self, conn: Connection, ch: Any, now: datetime, method: str) -> SignIn:
        """Count a failed sign-in against the address; lock it when the window fills."""
        p = self.policy
        row = self._lock_row(conn, ch.tenant_id, ch.address)
        if row is None or row.window_started_at <= now - p.lockout_window:
            failures, started = 1, now
        else:
            failures, started = row.failures + 1, row.window_started_at
        locked_until = now + p.lockout_duration if failures >= p.lockout_failures else None
        values = {"failures": failures, "window_started_at": started, "locked_until": locked_until}
        if row is None:
            conn.execute(
                sa.insert(portal_lockouts).values(
                    tenant_id=ch.tenant_id, address=ch.address.lower(), codes_sent=0, **values
                )
            )
        else:
            conn.execute(
                sa.update(portal_lockouts)
                .where(
                    portal_lockouts.c.tenant_id == ch.tenant_id,
                    portal_lockouts.c.address == ch.address.lower(),
                )
                .values(**values)
            )
        actor = f"portal-challenge:{ch.id[:16]}"
        record_audit(
            conn,
            AuditAction.PORTAL_SIGN_IN_FAILED,
            actor,
            ch.tenant_id,
            ch.portal_message_id,
            method=method,
            failures=failures,
        )
        if locked_until is not None:
            record_audit(
                conn,
                AuditAction.PORTAL_LOCKED_OUT,
                actor,
                ch.tenant_id,
                ch.portal_message_id,
                until=locked_until.isoformat(),
            )
            return SignIn(SignInStatus.LOCKED, locked_until=locked_until)
        return SignIn(SignInStatus.WRONG, remaining=p.lockout_failures - failures)

    # -- one-time code ------------------------------------------------------------------------
    def send_code(self, challenge_token: str, channel: Channel = Channel.EMAIL) -> SignIn:
        """Mail (or text) a fresh one-time code for this challenge (the previous one stops working)."""
        now = self.now()
        p = self.policy
        code = "".join(secrets.choice("0123456789") for _ in range(p.code_digits))
        with self.engine.begin() as conn:
            ch = self._challenge_row(conn, challenge_token, now)
            if ch is None:
                return SignIn(SignInStatus.EXPIRED)
            hold = self.hold(conn, ch.portal_message_id, ch.tenant_id)
            if hold is None or hold.state(now) is not LinkState.OPEN or hold.passphrase_only:
                # A passphrase-only message never gets a code by mail.
                return SignIn(SignInStatus.EXPIRED)
            locked = self._locked_until(conn, ch.tenant_id, ch.address, now)
            if locked is not None:
                return SignIn(SignInStatus.LOCKED, locked_until=locked)
            plan = self.code_plan(conn, hold)
            number = self.sms_number(hold) if channel is Channel.SMS else None
            if channel is Channel.SMS and number is None:
                return SignIn(SignInStatus.UNAVAILABLE)
            if number is None and not plan.send:
                self._code_event(conn, ch, hold, plan, now)
                return SignIn(SignInStatus.UNAVAILABLE)
            if not self._count_code(conn, ch.tenant_id, ch.address, now):
                return SignIn(SignInStatus.THROTTLED)
            conn.execute(
                sa.update(portal_challenges)
                .where(portal_challenges.c.id == ch.id)
                .values(
                    code_hash=code_hash(challenge_token, code),
                    code_sent_at=now,
                    code_expires_at=now + p.code_ttl,
                    code_attempts=0,
                )
            )
            sender = conn.execute(
                sa.select(messages.c.mail_from, tenants.c.name)
                .join(tenants, tenants.c.id == messages.c.tenant_id)
                .where(messages.c.id == hold.message_id, messages.c.tenant_id == hold.tenant_id)
            ).one()
            self._code_event(conn, ch, hold, plan, now, channel)
        if number is not None and self.texter is not None:
            self.texter.queue_code(
                tenant_id=hold.tenant_id,
                number=number,
                organization=str(sender.name),
                code=code,
                message_id=hold.message_id,
                recipient_id=hold.recipient_id,
            )
            return SignIn(SignInStatus.OK)
        self._mail_code(hold, str(sender.mail_from), str(sender.name), code, plan.tls_policy)
        return SignIn(SignInStatus.OK)

    def _code_event(
        self,
        conn: Connection,
        ch: Any,
        hold: Hold,
        plan: CodeMailPlan,
        now: datetime,
        channel: Channel = Channel.EMAIL,
    ) -> None:
        """Audit and record, on the held recipient, which channel and TLS policy a code uses."""
        if channel is Channel.SMS:
            plan = dataclasses.replace(plan, send=True, why="")
        facts = {
            "channel": str(channel),
            "tls_policy": str(plan.tls_policy),
            "required_tls": str(hold.required_tls),
            "notice_strength": str(hold.notice_strength) if hold.notice_strength else None,
            "weak_notice_policy": str(hold.weak_notice_policy),
        }
        if not plan.send:
            facts["reason"] = plan.why
        action = AuditAction.PORTAL_CODE_SENT if plan.send else AuditAction.PORTAL_CODE_REFUSED
        record_audit(conn, action, f"portal-challenge:{ch.id[:16]}", hold.tenant_id, hold.id, **facts)
        ev.emit(
            conn,
            tenant_id=hold.tenant_id,
            message_id=hold.message_id,
            type_=ev.EventType.PORTAL_CODE_SENT if plan.send else ev.EventType.PORTAL_CODE_REFUSED,
            recipient_id=hold.recipient_id,
            recipient=hold.address,
            data={"portal_message_id": hold.id, **facts},
            at=now,
        )

    def verify_code(self, challenge_token: str, code: str) -> SignIn:
        now = self.now()
        with self.engine.begin() as conn:
            ch = self._challenge_row(conn, challenge_token, now)
            if ch is None:
                return SignIn(SignInStatus.EXPIRED)
            locked = self._locked_until(conn, ch.tenant_id, ch.address, now)
            if locked is not None:
                return SignIn(SignInStatus.LOCKED, locked_until=locked)
            if ch.code_hash is None or ch.code_expires_at is None or ch.code_expires_at <= now:
                return SignIn(SignInStatus.EXPIRED)
            # Digits as typed on any keyboard ("١٢٣" too), read as ASCII; "²" is no digit.
            given = "".join(str(unicodedata.decimal(c)) for c in code if c.isdecimal())
            if not hmac.compare_digest(code_hash(challenge_token, given), ch.code_hash):
                attempts = ch.code_attempts + 1
                # A code that has been guessed at too often is void even before the
                # address locks, so a slow guesser cannot keep one code alive.
                conn.execute(
                    sa.update(portal_challenges)
                    .where(portal_challenges.c.id == ch.id)
                    .values(
                        code_attempts=attempts,
                        code_hash=None if attempts >= self.policy.code_attempts else ch.code_hash,
                    )
                )
                return self._fail(conn, ch, now, "code")
            return self._start_session(conn, ch, now, address_verified=True, unlocked=())

    def verify_passphrase(self, challenge_token: str, passphrase: str) -> SignIn:
        now = self.now()
        with self.engine.begin() as conn:
            ch = self._challenge_row(conn, challenge_token, now)
            if ch is None:
                return SignIn(SignInStatus.EXPIRED)
            locked = self._locked_until(conn, ch.tenant_id, ch.address, now)
            if locked is not None:
                return SignIn(SignInStatus.LOCKED, locked_until=locked)
            hold = self.hold(conn, ch.portal_message_id, ch.tenant_id)
            stored = conn.execute(
                sa.select(portal_message_settings.c.passphrase_hash).where(
                    portal_message_settings.c.tenant_id == ch.tenant_id,
                    portal_message_settings.c.message_id == (hold.message_id if hold else ""),
                )
            ).scalar_one_or_none()
            if hold is None or stored is None:
                return SignIn(SignInStatus.EXPIRED)
            try:
                self.hasher.verify(stored, passphrase)
            except (VerificationError, InvalidHashError):
                return self._fail(conn, ch, now, "passphrase")
            return self._start_session(conn, ch, now, address_verified=False, unlocked=(hold.message_id,))

    def _start_session(
        self, conn: Connection, ch: Any, now: datetime, *, address_verified: bool, unlocked: tuple[str, ...]
    ) -> SignIn:
        token = secrets.token_urlsafe(32)
        conn.execute(sa.update(portal_challenges).where(portal_challenges.c.id == ch.id).values(used_at=now))
        # A success clears the failure count (the lock itself is checked before this).
        conn.execute(
            sa.update(portal_lockouts)
            .where(
                portal_lockouts.c.tenant_id == ch.tenant_id, portal_lockouts.c.address == ch.address.lower()
            )
            .values(failures=0, window_started_at=now)
        )
        conn.execute(
            sa.insert(portal_sessions).values(
                id=sha256_hex(token),
                tenant_id=ch.tenant_id,
                address=ch.address.lower(),
                address_verified=address_verified,
                unlocked=list(unlocked),
                created_at=now,
                last_seen_at=now,
                expires_at=now + self.policy.session_lifetime,
            )
        )
        record_audit(
            conn,
            AuditAction.PORTAL_SIGNED_IN,
            f"portal:{sha256_hex(token)[:16]}",
            ch.tenant_id,
            ch.portal_message_id,
            method="code" if address_verified else "passphrase",
        )
        return SignIn(SignInStatus.OK, session_token=token)

    # -- sessions -----------------------------------------------------------------------------
    def session(self, token: str) -> tuple[Session | None, str]:
        """The live session for a cookie, or (None, why): ``none``, ``idle`` or ``expired``.

        Checking touches ``last_seen_at``, so any request counts as activity.
        """
        now = self.now()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(portal_sessions).where(portal_sessions.c.id == sha256_hex(token))
            ).first()
            if row is None or row.ended_at is not None:
                return None, "none"
            why = ""
            if row.expires_at <= now:
                why = "expired"
            elif row.last_seen_at + self.policy.session_idle <= now:
                why = "idle"
            if why:
                conn.execute(
                    sa.update(portal_sessions).where(portal_sessions.c.id == row.id).values(ended_at=now)
                )
                return None, why
            conn.execute(
                sa.update(portal_sessions).where(portal_sessions.c.id == row.id).values(last_seen_at=now)
            )
        return Session(row.id, row.tenant_id, row.address, row.address_verified, frozenset(row.unlocked)), ""

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(portal_sessions)
                .where(portal_sessions.c.id == sha256_hex(token), portal_sessions.c.ended_at.is_(None))
                .values(ended_at=self.now())
            )
