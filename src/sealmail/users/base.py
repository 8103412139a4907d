"""What every part of the console users' service shares: its collaborators, token hashing,
the session rows, the password check and failure counting.

``Users`` (``users/service.py``) is this base plus one mixin per use-case group: people
(``people.py``), enrolment (``enrolment.py``), sign-in steps (``signin.py``), sessions
(``sessions.py``) and passkeys (``passkeys.py``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.users import passwords
from sealmail.users.keys import Forget, forget_nothing
from sealmail.users.model import Clock, SessionPolicy, Stage
from sealmail.users.tables import console_links, console_sessions, console_users

log = structlog.get_logger("sealmail.users")


class OwnerAlert(Protocol):
    """Tells a tenant's owners something happened (a mail through the product's queue)."""

    def __call__(self, tenant_id: str, subject: str, text: str) -> None: ...


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def seed_aad(user_id: str) -> bytes:
    return f"sealmail/console-totp/{user_id}".encode()


# A valid argon2 hash of nothing anyone knows: verifying against it when the email is
# unknown costs the same time as a real check, so timing does not reveal who has an account.
DUMMY_HASH = PasswordHasher(time_cost=1, memory_cost=64).hash(secrets.token_hex(16))


class UsersBase:
    def __init__(
        self,
        engine: Engine,
        hasher: PasswordHasher,
        seed_key: Callable[[], bytes],
        policy: SessionPolicy | None = None,
        clock: Clock | None = None,
        alert: OwnerAlert | None = None,
    ) -> None:
        self.engine = engine
        self.hasher = hasher
        self.seed_key = seed_key
        self.policy = policy or SessionPolicy()
        self.now: Clock = clock or (lambda: datetime.now(UTC))
        self.alert = alert
        # Set by the composition root to ``Tenancy.forget``: revocations refused here at once.
        self.forget: Forget = forget_nothing

    def _tell_owners(self, tenant_id: str, subject: str, text: str) -> None:
        """Best effort after the commit: a failed alert is logged, never undoes the change."""
        if self.alert is None:
            log.warning("console.alert_unrouted", tenant_id=tenant_id, subject=subject)
            return
        try:
            self.alert(tenant_id, subject, text)
        except Exception:
            log.exception("console.alert_failed", tenant_id=tenant_id, subject=subject)

    def _link(self, conn: Connection, tenant_id: str, user_id: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        conn.execute(
            sa.insert(console_links).values(
                id=sha(token), tenant_id=tenant_id, user_id=user_id, created_at=now,
                expires_at=now + self.policy.link_ttl,
            )
        )  # fmt: skip
        return token

    def _user(self, conn: Connection, tenant_id: str, user_id: str) -> Any:
        return conn.execute(
            sa.select(console_users).where(
                console_users.c.tenant_id == tenant_id, console_users.c.id == user_id
            )
        ).first()

    @staticmethod
    def _usable(user: Any, now: datetime) -> bool:
        return user.disabled_at is None and (user.expires_at is None or user.expires_at > now)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(hashed, passwords.normalize(password)))
        except (VerificationError, InvalidHashError):
            return False

    def _new_session(
        self, conn: Connection, user: Any, stage: Stage, now: datetime, *, pending: bytes | None = None,
        link: str | None = None,
    ) -> str:  # fmt: skip
        token = secrets.token_urlsafe(32)
        lifetime = self.policy.lifetime if stage is Stage.ACTIVE else self.policy.signin_window
        conn.execute(
            sa.insert(console_sessions).values(
                id=sha(token), tenant_id=user.tenant_id, user_id=user.id, stage=stage,
                pending_secret=pending, created_at=now, last_seen_at=now, expires_at=now + lifetime,
            )
        )  # fmt: skip
        return token

    def _session_row(self, conn: Connection, token: str, now: datetime, stage: Stage) -> Any:
        row = conn.execute(
            sa.select(console_sessions).where(console_sessions.c.id == sha(token)).with_for_update()
        ).first()
        if row is None or row.stage != stage or row.ended_at is not None or row.expires_at <= now:
            return None
        return row

    def _complete_signin(self, conn: Connection, pre: Any, user: Any, now: datetime, factor: str) -> str:
        """The second factor held: reset the failures, end the pre-MFA session, open a new one.

        A new token for the signed-in session: the pre-MFA cookie never becomes one (no
        session fixation).
        """
        conn.execute(sa.update(console_users).where(console_users.c.id == user.id).values(failed_signins=0))
        conn.execute(sa.update(console_sessions).where(console_sessions.c.id == pre.id).values(ended_at=now))
        new = self._new_session(conn, user, Stage.ACTIVE, now)
        audit.append(
            conn, action=AuditAction.USER_SIGNED_IN, actor=f"user:{user.id}", tenant_id=user.tenant_id,
            target=user.id, details={"factor": factor},
        )  # fmt: skip
        return new

    def _fail(self, conn: Connection, user_id: str, now: datetime, factor: str) -> bool:
        """Count a failure; lock the account after too many.  True when it is now locked.

        The caller tells the owners (``_locked_alert``) once its transaction has committed.
        """
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
            log.warning("console.user_locked", tenant_id=row.tenant_id, user_id=user_id)
        return locked

    def _locked_alert(self, user_id: str) -> None:
        """Log-in monitoring (164.308(a)(5)(ii)(C)): the owners hear of every lockout."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(console_users.c.tenant_id, console_users.c.email, console_users.c.locked_until)
                .where(console_users.c.id == user_id)
            ).one()  # fmt: skip
        self._tell_owners(
            row.tenant_id,
            "Sealmail console: an account was locked after failed sign-ins",
            f"The console account {row.email} ({user_id}) was locked after repeated failed\n"
            f"sign-in attempts. It unlocks by itself at {row.locked_until.isoformat()}.\n\n"
            "If this was not the person themselves, review the audit log (actions\n"
            "user:signin_failed and user:locked) and consider disabling the account.\n",
        )
