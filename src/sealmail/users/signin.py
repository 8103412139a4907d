"""Sign-in: the password, then the second factor (a TOTP code or a recovery code).

Passkeys (``passkeys.py``) and single sign-on (``sso.py``) end in the same place:
``UsersBase._complete_signin``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.crypto import vault
from sealmail.store import db
from sealmail.users import totp
from sealmail.users.base import DUMMY_HASH, UsersBase, seed_aad
from sealmail.users.model import SignIn, SignInStatus, Stage
from sealmail.users.tables import console_users


class SignInSteps(UsersBase):
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
            self._verify(DUMMY_HASH, password)
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
        for user, now_locked in zip(candidates, locked, strict=True):
            if now_locked:
                self._locked_alert(user.id)
        return SignIn(SignInStatus.LOCKED if all(locked) else SignInStatus.WRONG)

    def verify_mfa(self, token: str, code: str) -> SignIn:
        """Second factor: a TOTP code or an unused recovery code.  OK carries a new token."""
        now = self.now()
        key = self.seed_key()
        with self.engine.begin() as conn:
            s, user, refused = self._mfa_pending(conn, token, now)
            if refused is not None:
                return refused
            if self._second_factor(conn, user, code, now, key):
                return SignIn(SignInStatus.OK, self._complete_signin(conn, s, user, now, "totp"))
            locked = self._fail(conn, user.id, now, "second_factor")
        if locked:
            self._locked_alert(user.id)
        return SignIn(SignInStatus.LOCKED if locked else SignInStatus.WRONG)

    def _mfa_pending(self, conn: Connection, token: str, now: datetime) -> tuple[Any, Any, SignIn | None]:
        """The password-accepted session and its user, locked for update; or why not."""
        s = self._session_row(conn, token, now, Stage.MFA)
        if s is None:
            return None, None, SignIn(SignInStatus.EXPIRED)
        user = conn.execute(
            sa.select(console_users).where(console_users.c.id == s.user_id).with_for_update()
        ).one()
        if not self._usable(user, now):
            return s, user, SignIn(SignInStatus.EXPIRED)
        if user.locked_until is not None and user.locked_until > now:
            return s, user, SignIn(SignInStatus.LOCKED)
        return s, user, None

    def _second_factor(self, conn: Connection, user: Any, code: str, now: datetime, key: bytes) -> bool:
        secret = vault.open_sealed(key, user.totp_secret, seed_aad(user.id)).decode()
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
