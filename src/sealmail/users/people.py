"""People of a tenant's console: invitations, the first owner's link, roles, disabling.

Disabling a user ends their sessions and revokes their one-time links, the API keys and the
SMTP credentials they made (directly or through one of their keys) in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest, NotFound, PermissionDenied
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.users import roles
from sealmail.users.base import UsersBase
from sealmail.users.keys import Revoked, revoke_for_user
from sealmail.users.model import Session
from sealmail.users.tables import console_emergency, console_links, console_sessions, console_users


@dataclass(frozen=True, slots=True)
class ConsoleUserRow:
    """A console user as the people page lists them."""

    id: str
    email: str
    name: str
    role: str
    disabled_at: datetime | None
    expires_at: datetime | None
    locked_until: datetime | None
    break_glass: bool
    enrolled: bool  # has set a password (an invited user has not yet)
    emergency_until: datetime | None  # end of live emergency access, if any


class People(UsersBase):
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

    def list_users(self, tenant_id: str) -> list[ConsoleUserRow]:
        now, cu, ce = self.now(), console_users.c, console_emergency.c
        live = (
            sa.select(sa.func.max(ce.expires_at))
            .where(ce.user_id == cu.id, ce.ended_at.is_(None), ce.expires_at > now)
            .scalar_subquery()
        )
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    cu.id, cu.email, cu.name, cu.role, cu.disabled_at, cu.expires_at, cu.locked_until,
                    cu.break_glass, cu.password_hash.is_not(None).label("enrolled"),
                    live.label("emergency_until"),
                )
                .where(cu.tenant_id == tenant_id)
                .order_by(cu.email)
            ).all()  # fmt: skip
        return [ConsoleUserRow(*r) for r in rows]

    def set_role(self, who: Session, user_id: str, role: str) -> None:
        with self.engine.begin() as conn:
            row = self._user_for_change(conn, who, user_id)
            if role not in set(roles.Role) or not roles.may_assign(who.role, role):
                raise PermissionDenied("your role cannot grant that role")
            conn.execute(sa.update(console_users).where(console_users.c.id == row.id).values(role=role))
            # Keys die with the right to make them: a role without API keys takes the person's
            # keys and SMTP credentials with it, in this transaction (as disabling does).
            # A role that keeps the right takes only the keys it could not have made (a demoted
            # owner's admin-scoped keys), and whatever was made through those.
            revoked = Revoked()
            key_right = roles.Permission.MANAGE_API_KEYS
            if roles.allows(row.role, key_right):
                keeping = role if roles.allows(role, key_right) else None
                revoked = revoke_for_user(
                    conn, who.tenant_id, row.id, who.actor, self.now(), reason="creator_lost_role",
                    keeping_role=keeping,
                )  # fmt: skip
            audit.append(
                conn, action=AuditAction.USER_ROLE_CHANGED, actor=who.actor, tenant_id=who.tenant_id,
                target=row.id,
                details={"before": row.role, "after": role, "api_keys_revoked": len(revoked.key_ids),
                         "smtp_credentials_revoked": len(revoked.credential_ids)},
            )  # fmt: skip
        self.forget(revoked.key_ids, revoked.credential_ids)

    def disable(self, who: Session, user_id: str) -> None:
        """Disable a user; end their sessions, revoke their keys and SMTP credentials: one transaction."""
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
            revoked = revoke_for_user(conn, who.tenant_id, row.id, who.actor, now)
            audit.append(
                conn, action=AuditAction.USER_DISABLED, actor=who.actor, tenant_id=who.tenant_id,
                target=row.id,
                details={"sessions_ended": ended, "api_keys_revoked": len(revoked.key_ids),
                         "smtp_credentials_revoked": len(revoked.credential_ids)},
            )  # fmt: skip
        self.forget(revoked.key_ids, revoked.credential_ids)

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
