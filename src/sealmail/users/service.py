"""Console users: invitations, enrolment (password + TOTP), sign-in, sessions, roles.

Every state change writes its row and its audit entry in one transaction; every query is
tenant-scoped.  Tokens that reach a browser (one-time links, session cookies) are stored
as their SHA-256 only.  HIPAA anchors: unique user identification (164.312(a)(2)(i)),
automatic logoff (164.312(a)(2)(iii)), log-in monitoring (164.308(a)(5)(ii)(C)), person
authentication (164.312(d)).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.crypto import vault
from sealmail.errors import InvalidRequest, NotFound, PermissionDenied
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import tenants
from sealmail.users import passwords, roles, totp
from sealmail.users.keys import revoke_for_user
from sealmail.users.model import (
    Clock,
    Enrolled,
    Session,
    SessionPolicy,
    SignIn,
    SignInStatus,
    Stage,
)
from sealmail.users.tables import console_links, console_sessions, console_users

log = structlog.get_logger("sealmail.users")


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aad(user_id: str) -> bytes:
    return f"sealmail/console-totp/{user_id}".encode()


# A valid argon2 hash of nothing anyone knows: verifying against it when the email is
# unknown costs the same time as a real check, so timing does not reveal who has an account.
_DUMMY = PasswordHasher(time_cost=1, memory_cost=64).hash(secrets.token_hex(16))


class Users:
    def __init__(
        self,
        engine: Engine,
        hasher: PasswordHasher,
        seed_key: Callable[[], bytes],
        policy: SessionPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.hasher = hasher
        self.seed_key = seed_key
        self.policy = policy or SessionPolicy()
        self.now: Clock = clock or (lambda: datetime.now(UTC))

    # -- people ---------------------------------------------------------------------------
    def invite(
        self,
        tenant_id: str,
        email: str,
        name: str,
        role: str,
        actor: str,
        *,
        actor_role: str = roles.Role.OWNER,
        expires_at: datetime | None = None,
    ) -> tuple[str, str]:
        """A new user and their one-time enrolment link token: ``(user_id, token)``."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320 or not email.isprintable():
            raise InvalidRequest("give the person's email address")
        if role not in set(roles.Role):
            raise InvalidRequest(f"role must be one of {', '.join(roles.Role)}")
        if not roles.may_assign(actor_role, role):
            raise PermissionDenied("your role cannot grant that role")
        now = self.now()
        if role == roles.Role.AUDITOR and expires_at is None:
            expires_at = now + timedelta(days=self.policy.auditor_days)
        user_id = new_id("usr")
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.select(console_users.c.id).where(
                    console_users.c.tenant_id == tenant_id, console_users.c.email == email
                )
            ).first()
            if taken is not None:
                raise InvalidRequest("a user with that email address exists in this organization")
            conn.execute(
                sa.insert(console_users).values(
                    id=user_id, tenant_id=tenant_id, email=email, name=name.strip()[:200] or email,
                    role=role, recovery_hashes=[], failed_signins=0, expires_at=expires_at,
                    created_at=now, created_by=actor,
                )
            )  # fmt: skip
            token = self._link(conn, tenant_id, user_id, now)
            audit.append(
                conn, action=AuditAction.USER_INVITED, actor=actor, tenant_id=tenant_id, target=user_id,
                details={"role": role, "expires_at": expires_at.isoformat() if expires_at else None},
            )  # fmt: skip
        return user_id, token

    def owner_link(self, tenant_id: str, email: str, actor: str) -> str | None:
        """A one-time link for the tenant's first owner, made if none exists yet.

        A fresh link replaces older ones while the owner has not enrolled; once they have,
        None (they sign in with their password and TOTP; links would bypass both).
        """
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(console_users).where(
                    console_users.c.tenant_id == tenant_id,
                    console_users.c.email == email.strip().lower(),
                )
            ).first()
        if row is None:
            return self.invite(tenant_id, email, "Owner", roles.Role.OWNER, actor)[1]
        if row.password_hash is not None or row.disabled_at is not None:
            return None
        now = self.now()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(console_links)
                .where(console_links.c.user_id == row.id, console_links.c.used_at.is_(None))
                .values(used_at=now)
            )
            token = self._link(conn, tenant_id, row.id, now)
            audit.append(
                conn, action=AuditAction.USER_LINK_ISSUED, actor=actor, tenant_id=tenant_id, target=row.id
            )
        return token

    def _link(self, conn: Connection, tenant_id: str, user_id: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        conn.execute(
            sa.insert(console_links).values(
                id=_sha(token), tenant_id=tenant_id, user_id=user_id, created_at=now,
                expires_at=now + self.policy.link_ttl,
            )
        )  # fmt: skip
        return token

    def list_users(self, tenant_id: str) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    console_users.c.id, console_users.c.email, console_users.c.name,
                    console_users.c.role, console_users.c.disabled_at, console_users.c.expires_at,
                    console_users.c.locked_until,
                    console_users.c.password_hash.is_not(None).label("enrolled"),
                )
                .where(console_users.c.tenant_id == tenant_id)
                .order_by(console_users.c.email)
            ).all()  # fmt: skip
        return [dict(r._mapping) for r in rows]

    def set_role(self, who: Session, user_id: str, role: str) -> None:
        with self.engine.begin() as conn:
            row = self._user_for_change(conn, who, user_id)
            if role not in set(roles.Role) or not roles.may_assign(who.role, role):
                raise PermissionDenied("your role cannot grant that role")
            conn.execute(sa.update(console_users).where(console_users.c.id == row.id).values(role=role))
            audit.append(
                conn, action=AuditAction.USER_ROLE_CHANGED, actor=who.actor, tenant_id=who.tenant_id,
                target=row.id, details={"before": row.role, "after": role},
            )  # fmt: skip

    def disable(self, who: Session, user_id: str) -> None:
        """Disable a user; end their sessions and revoke their API keys in the same transaction."""
        now = self.now()
        with self.engine.begin() as conn:
            row = self._user_for_change(conn, who, user_id)
            if row.id == who.user_id:
                raise InvalidRequest("you cannot disable yourself; ask another owner or administrator")
            conn.execute(sa.update(console_users).where(console_users.c.id == row.id).values(disabled_at=now))
            ended = conn.execute(
                sa.update(console_sessions)
                .where(console_sessions.c.user_id == row.id, console_sessions.c.ended_at.is_(None))
                .values(ended_at=now)
            ).rowcount
            conn.execute(
                sa.update(console_links)
                .where(console_links.c.user_id == row.id, console_links.c.used_at.is_(None))
                .values(used_at=now)
            )
            keys = revoke_for_user(conn, who.tenant_id, row.id, who.actor, now)
            audit.append(
                conn, action=AuditAction.USER_DISABLED, actor=who.actor, tenant_id=who.tenant_id,
                target=row.id, details={"sessions_ended": ended, "api_keys_revoked": keys},
            )  # fmt: skip

    def _user_for_change(self, conn: Connection, who: Session, user_id: str) -> Any:
        if not who.may(roles.Permission.MANAGE_USERS):
            raise PermissionDenied("your role cannot manage users")
        row = conn.execute(
            sa.select(console_users)
            .where(console_users.c.tenant_id == who.tenant_id, console_users.c.id == user_id)
            .with_for_update()
        ).first()
        if row is None:
            raise NotFound("no such user in this organization")
        if not roles.may_assign(who.role, row.role):
            raise PermissionDenied("only an owner can change an owner")
        return row

    # -- enrolment ------------------------------------------------------------------------
    def open_link(self, token: str) -> str | None:
        """Start enrolment from a one-time link: an ``enroll`` session token, or None."""
        now = self.now()
        # Fetched before the write transaction: on SQLite a second connection inside it would wait.
        key = self.seed_key()
        with self.engine.begin() as conn:
            link = conn.execute(
                sa.select(console_links).where(console_links.c.id == _sha(token)).with_for_update()
            ).first()
            if link is None or link.used_at is not None or link.expires_at <= now:
                return None
            user = self._user(conn, link.tenant_id, link.user_id)
            if user is None or not self._usable(user, now):
                return None
            seed = vault.seal(key, totp.new_secret().encode(), _aad(user.id))
            return self._new_session(conn, user, Stage.ENROLL, now, pending=seed, link=link.id)

    def enroll(self, token: str, password: str, code: str) -> Enrolled:
        """Set the password and TOTP seed; the session becomes active and the link dies."""
        now = self.now()
        key = self.seed_key()
        with self.engine.begin() as conn:
            s = self._session_row(conn, token, now, Stage.ENROLL)
            if s is None:
                raise PermissionDenied("this enrolment has expired; open your link again")
            user = self._user(conn, s.tenant_id, s.user_id)
            refusal = passwords.check(password, email=user.email)
            if refusal is not None:
                return Enrolled(refusal=refusal)
            secret = vault.open_sealed(key, s.pending_secret, _aad(user.id)).decode()
            step = totp.matching_step(secret, code, now, None)
            if step is None:
                return Enrolled(bad_code=True)
            codes = totp.new_recovery_codes()
            conn.execute(
                sa.update(console_users).where(console_users.c.id == user.id).values(
                    password_hash=self.hasher.hash(passwords.normalize(password)),
                    totp_secret=s.pending_secret, totp_last_step=step, failed_signins=0,
                    recovery_hashes=[self.hasher.hash(totp.normalize_recovery(c)) for c in codes],
                )
            )  # fmt: skip
            conn.execute(
                sa.update(console_links)
                .where(console_links.c.user_id == user.id, console_links.c.used_at.is_(None))
                .values(used_at=now)
            )
            conn.execute(
                sa.update(console_sessions)
                .where(console_sessions.c.id == s.id)
                .values(
                    stage=Stage.ACTIVE,
                    pending_secret=None,
                    last_seen_at=now,
                    expires_at=now + self.policy.lifetime,
                )
            )
            audit.append(
                conn,
                action=AuditAction.USER_ENROLLED,
                actor=f"user:{user.id}",
                tenant_id=user.tenant_id,
                target=user.id,
            )
        return Enrolled(recovery_codes=codes)

    def pending_secret(self, session: Session) -> str:
        """The TOTP seed being enrolled, shown to the user once per enrolment page."""
        with db.reader(self.engine) as conn:
            blob = conn.execute(
                sa.select(console_sessions.c.pending_secret).where(console_sessions.c.id == session.token_id)
            ).scalar_one()
        return vault.open_sealed(self.seed_key(), blob, _aad(session.user_id)).decode()

    # -- sign-in --------------------------------------------------------------------------
    def begin_signin(self, email: str, password: str) -> SignIn:
        """First factor: the password.  OK carries an ``mfa``-stage token."""
        now = self.now()
        email = email.strip().lower()[:320]
        with db.reader(self.engine) as conn:
            candidates = conn.execute(
                sa.select(console_users).where(
                    console_users.c.email == email, console_users.c.password_hash.is_not(None)
                )
            ).all()
        if not candidates:
            self._verify(_DUMMY, password)
            return SignIn(SignInStatus.WRONG)
        for user in candidates:
            if user.locked_until is not None and user.locked_until > now:
                continue
            if self._verify(user.password_hash, password):
                if not self._usable(user, now):
                    return SignIn(SignInStatus.WRONG)
                with self.engine.begin() as conn:
                    return SignIn(SignInStatus.OK, self._new_session(conn, user, Stage.MFA, now))
        if all(u.locked_until is not None and u.locked_until > now for u in candidates):
            return SignIn(SignInStatus.LOCKED)
        with self.engine.begin() as conn:
            locked = [self._fail(conn, u.id, now, "password") for u in candidates]
        return SignIn(SignInStatus.LOCKED if all(locked) else SignInStatus.WRONG)

    def verify_mfa(self, token: str, code: str) -> SignIn:
        """Second factor: a TOTP code or an unused recovery code.  OK carries a new token."""
        now = self.now()
        key = self.seed_key()
        with self.engine.begin() as conn:
            s = self._session_row(conn, token, now, Stage.MFA)
            if s is None:
                return SignIn(SignInStatus.EXPIRED)
            user = conn.execute(
                sa.select(console_users).where(console_users.c.id == s.user_id).with_for_update()
            ).one()
            if user.locked_until is not None and user.locked_until > now:
                return SignIn(SignInStatus.LOCKED)
            if not self._second_factor(conn, user, code, now, key):
                locked = self._fail(conn, user.id, now, "second_factor")
                return SignIn(SignInStatus.LOCKED if locked else SignInStatus.WRONG)
            conn.execute(
                sa.update(console_users).where(console_users.c.id == user.id).values(failed_signins=0)
            )
            # A new token for the signed-in session: the pre-MFA cookie never becomes one
            # (no session fixation).
            conn.execute(
                sa.update(console_sessions).where(console_sessions.c.id == s.id).values(ended_at=now)
            )
            new = self._new_session(conn, user, Stage.ACTIVE, now)
            audit.append(
                conn,
                action=AuditAction.USER_SIGNED_IN,
                actor=f"user:{user.id}",
                tenant_id=user.tenant_id,
                target=user.id,
            )
        return SignIn(SignInStatus.OK, new)

    def _second_factor(self, conn: Connection, user: Any, code: str, now: datetime, key: bytes) -> bool:
        secret = vault.open_sealed(key, user.totp_secret, _aad(user.id)).decode()
        step = totp.matching_step(secret, code, now, user.totp_last_step)
        if step is not None:
            conn.execute(
                sa.update(console_users).where(console_users.c.id == user.id).values(totp_last_step=step)
            )
            return True
        given = totp.normalize_recovery(code)
        if len(given) != 10:
            return False
        hashes = list(user.recovery_hashes or [])
        for i, h in enumerate(hashes):
            if self._verify(h, given):
                del hashes[i]
                conn.execute(
                    sa.update(console_users)
                    .where(console_users.c.id == user.id)
                    .values(recovery_hashes=hashes)
                )
                audit.append(
                    conn, action=AuditAction.USER_RECOVERY_CODE_USED, actor=f"user:{user.id}",
                    tenant_id=user.tenant_id, target=user.id, details={"remaining": len(hashes)},
                )  # fmt: skip
                return True
        return False

    def _fail(self, conn: Connection, user_id: str, now: datetime, factor: str) -> bool:
        """Count a failure; lock the account after too many.  True when it is now locked."""
        row = conn.execute(
            sa.select(console_users.c.tenant_id, console_users.c.failed_signins)
            .where(console_users.c.id == user_id)
            .with_for_update()
        ).one()
        failures = int(row.failed_signins) + 1
        locked: bool = failures >= self.policy.lockout_failures
        values: dict[str, Any] = {"failed_signins": 0 if locked else failures}
        if locked:
            values["locked_until"] = now + self.policy.lockout
        conn.execute(sa.update(console_users).where(console_users.c.id == user_id).values(**values))
        audit.append(
            conn, action=AuditAction.USER_SIGNIN_FAILED, actor=f"user:{user_id}", tenant_id=row.tenant_id,
            target=user_id, details={"factor": factor, "failures": failures},
        )  # fmt: skip
        if locked:
            audit.append(
                conn, action=AuditAction.USER_LOCKED, actor="system", tenant_id=row.tenant_id, target=user_id,
                details={"until": values["locked_until"].isoformat()},
            )  # fmt: skip
            # The alert (164.308(a)(5)(ii)(C) log-in monitoring): a warning operators route.
            log.warning("console.user_locked", tenant_id=row.tenant_id, user_id=user_id)
        return locked

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(hashed, passwords.normalize(password)))
        except (VerificationError, InvalidHashError):
            return False

    # -- sessions -------------------------------------------------------------------------
    def _new_session(
        self, conn: Connection, user: Any, stage: Stage, now: datetime, *, pending: bytes | None = None,
        link: str | None = None,
    ) -> str:  # fmt: skip
        token = secrets.token_urlsafe(32)
        lifetime = self.policy.lifetime if stage is Stage.ACTIVE else self.policy.signin_window
        conn.execute(
            sa.insert(console_sessions).values(
                id=_sha(token), tenant_id=user.tenant_id, user_id=user.id, stage=stage,
                pending_secret=pending, created_at=now, last_seen_at=now, expires_at=now + lifetime,
            )
        )  # fmt: skip
        return token

    def _session_row(self, conn: Connection, token: str, now: datetime, stage: Stage) -> Any:
        row = conn.execute(
            sa.select(console_sessions).where(console_sessions.c.id == _sha(token)).with_for_update()
        ).first()
        if row is None or row.stage != stage or row.ended_at is not None or row.expires_at <= now:
            return None
        return row

    def session(self, token: str, stage: Stage = Stage.ACTIVE) -> tuple[Session | None, str]:
        """The live session behind a cookie, touched; or None and why (``idle``, ``expired``…)."""
        now = self.now()
        cs, cu = console_sessions.c, console_users.c
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(
                    cs.id, cs.tenant_id, cs.user_id, cs.stage, cs.last_seen_at, cs.ended_at, cs.expires_at,
                    cu.email, cu.name, cu.role, cu.disabled_at, cu.expires_at.label("user_expires_at"),
                    tenants.c.settings,
                )
                .join(console_users, cu.id == cs.user_id)
                .join(tenants, tenants.c.id == cs.tenant_id)
                .where(cs.id == _sha(token))
            ).first()  # fmt: skip
            if row is None or row.ended_at is not None or row.stage != stage:
                return None, "none"
            why = self._ended_why(row, now)
            conn.execute(
                sa.update(console_sessions)
                .where(cs.id == row.id)
                .values(**({"ended_at": now} if why else {"last_seen_at": now}))
            )
        if why:
            return None, why
        return Session(
            row.id, row.tenant_id, row.user_id, row.email, row.name, row.role, Stage(row.stage)
        ), "ok"

    def _ended_why(self, row: Any, now: datetime) -> str:
        if row.expires_at <= now:
            return "expired"
        if now - row.last_seen_at >= self.idle_for(row.settings):
            return "idle"
        if row.disabled_at is not None or (row.user_expires_at is not None and row.user_expires_at <= now):
            return "disabled"
        return ""

    def idle_for(self, tenant_settings: dict[str, Any] | None) -> timedelta:
        minutes = (tenant_settings or {}).get("console_idle_minutes")
        if isinstance(minutes, int) and 1 <= minutes <= 60:
            return timedelta(minutes=minutes)
        return self.policy.idle

    def end_session(self, token: str) -> None:
        now = self.now()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(console_sessions).where(
                    console_sessions.c.id == _sha(token), console_sessions.c.ended_at.is_(None)
                )
            ).first()
            if row is None:
                return
            conn.execute(
                sa.update(console_sessions).where(console_sessions.c.id == row.id).values(ended_at=now)
            )
            audit.append(
                conn,
                action=AuditAction.USER_SIGNED_OUT,
                actor=f"user:{row.user_id}",
                tenant_id=row.tenant_id,
                target=row.user_id,
            )

    def _user(self, conn: Connection, tenant_id: str, user_id: str) -> Any:
        return conn.execute(
            sa.select(console_users).where(
                console_users.c.tenant_id == tenant_id, console_users.c.id == user_id
            )
        ).first()

    @staticmethod
    def _usable(user: Any, now: datetime) -> bool:
        return user.disabled_at is None and (user.expires_at is None or user.expires_at > now)
