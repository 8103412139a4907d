"""Enrolment: a one-time link opens it; a password and a confirmed TOTP code finish it."""

from __future__ import annotations

import sqlalchemy as sa

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.crypto import vault
from sealmail.errors import PermissionDenied
from sealmail.store import db
from sealmail.users import passwords, totp
from sealmail.users.base import UsersBase, seed_aad, sha
from sealmail.users.model import Enrolled, Session, Stage
from sealmail.users.tables import console_links, console_sessions, console_users


class Enrolment(UsersBase):
    def open_link(self, token: str) -> str | None:
        """Start enrolment from a one-time link: an ``enroll`` session token, or None."""
        now = self.now()
        # Fetched before the write transaction: on SQLite a second connection inside it would wait.
        key = self.seed_key()
        with self.engine.begin() as conn:
            link = conn.execute(
                sa.select(console_links).where(console_links.c.id == sha(token)).with_for_update()
            ).first()
            if link is None or link.used_at is not None or link.expires_at <= now:
                return None
            user = self._user(conn, link.tenant_id, link.user_id)
            if user is None or not self._usable(user, now):
                return None
            seed = vault.seal(key, totp.new_secret().encode(), seed_aad(user.id))
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
            secret = vault.open_sealed(key, s.pending_secret, seed_aad(user.id)).decode()
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
        return vault.open_sealed(self.seed_key(), blob, seed_aad(session.user_id)).decode()
