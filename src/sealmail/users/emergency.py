"""Break-glass emergency access (45 CFR 164.312(a)(2)(ii) emergency access procedure).

An owner marks the few people who may break the glass.  Such a person, signed in with
their own password and second factor, takes wider access for a short time (15 minutes to
4 hours) by writing why; the grant opens every console page except those that would leave
something behind it: people, owners, API keys, sign-in settings (``roles.NEVER_IN_EMERGENCY``).
The owners are mailed at once through the product's queue; every page opened under the
grant is audited with the person, and the grant ends by itself, by its holder or by an owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest, NotFound, PermissionDenied
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.users import roles
from sealmail.users.base import UsersBase
from sealmail.users.model import Session
from sealmail.users.tables import console_emergency, console_users

MIN_MINUTES, MAX_MINUTES = 15, 240
MIN_REASON = 10


@dataclass(frozen=True, slots=True)
class EmergencyGrant:
    """One break-glass grant a user took."""

    id: str
    reason: str
    granted_at: datetime
    expires_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class EmergencyStatus:
    """Whether a user may break the glass, and their last ten grants (newest first)."""

    eligible: bool
    history: tuple[EmergencyGrant, ...]


class Emergency(UsersBase):
    def set_break_glass(self, who: Session, user_id: str, eligible: bool) -> None:
        if not who.may(roles.Permission.MANAGE_SIGNIN_POLICY):
            raise PermissionDenied("only an owner decides who may break the glass")
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.update(console_users)
                .where(console_users.c.tenant_id == who.tenant_id, console_users.c.id == user_id)
                .values(break_glass=eligible)
            ).rowcount
            if not found:
                raise NotFound("no such user in this organization")
            audit.append(
                conn, action=AuditAction.USER_BREAK_GLASS_CHANGED, actor=who.actor, tenant_id=who.tenant_id,
                target=user_id, details={"eligible": eligible},
            )  # fmt: skip

    def emergency_status(self, who: Session) -> EmergencyStatus:
        ce = console_emergency.c
        with db.reader(self.engine) as conn:
            eligible = conn.execute(
                sa.select(console_users.c.break_glass).where(console_users.c.id == who.user_id)
            ).scalar_one()
            history = conn.execute(
                sa.select(ce.id, ce.reason, ce.granted_at, ce.expires_at, ce.ended_at)
                .where(ce.tenant_id == who.tenant_id, ce.user_id == who.user_id)
                .order_by(ce.granted_at.desc())
                .limit(10)
            ).all()
        return EmergencyStatus(bool(eligible), tuple(EmergencyGrant(*r) for r in history))

    def take_emergency(self, who: Session, reason: str, minutes: int) -> str:
        """Open a grant for ``who``: its id.  The owners hear of it at once."""
        reason = " ".join(reason.split())[:1000]
        if len(reason) < MIN_REASON:
            raise InvalidRequest(f"write why you need emergency access (at least {MIN_REASON} characters)")
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            raise InvalidRequest(f"emergency access lasts {MIN_MINUTES} to {MAX_MINUTES} minutes")
        now = self.now()
        until = now + timedelta(minutes=minutes)
        with self.engine.begin() as conn:
            user = conn.execute(
                sa.select(console_users).where(console_users.c.id == who.user_id).with_for_update()
            ).one()
            if not user.break_glass:
                raise PermissionDenied("an owner has not allowed you emergency access")
            if who.emergency is not None:
                raise InvalidRequest("you already hold emergency access")
            grant = new_id("brk")
            conn.execute(
                sa.insert(console_emergency).values(
                    id=grant, tenant_id=who.tenant_id, user_id=who.user_id, reason=reason, granted_at=now,
                    expires_at=until,
                )
            )  # fmt: skip
            audit.append(
                conn, action=AuditAction.EMERGENCY_ACCESS_GRANTED, actor=who.actor, tenant_id=who.tenant_id,
                target=who.user_id, details={"grant": grant, "reason": reason, "until": until.isoformat()},
            )  # fmt: skip
        self._tell_owners(
            who.tenant_id,
            "Sealmail console: emergency access was taken",
            f"{who.name} <{who.email}> ({who.user_id}) took break-glass emergency access\n"
            f"at {now.isoformat()} until {until.isoformat()}.\n\nTheir reason: {reason}\n\n"
            "Every page they open meanwhile is in the audit log (emergency_access:used).\n"
            "An owner can end it from the console's Users page.\n",
        )
        return grant

    def end_emergency(self, who: Session, user_id: str | None = None) -> None:
        """End the live grant of ``user_id`` (default: one's own; another's: owners only)."""
        target = user_id or who.user_id
        if target != who.user_id and not who.may(roles.Permission.MANAGE_SIGNIN_POLICY):
            raise PermissionDenied("only an owner ends someone else's emergency access")
        now, ce = self.now(), console_emergency.c
        with self.engine.begin() as conn:
            ended = conn.execute(
                sa.update(console_emergency)
                .where(
                    ce.tenant_id == who.tenant_id,
                    ce.user_id == target,
                    ce.ended_at.is_(None),
                    ce.expires_at > now,
                )
                .values(ended_at=now, ended_by=who.actor)
            ).rowcount
            if not ended:
                raise NotFound("no emergency access in force")
            audit.append(
                conn, action=AuditAction.EMERGENCY_ACCESS_ENDED, actor=who.actor, tenant_id=who.tenant_id,
                target=target,
            )  # fmt: skip

    def record_emergency_use(self, who: Session, method: str, path: str) -> None:
        """Every page opened under a grant, with the person (the grant's own audit trail)."""
        with self.engine.begin() as conn:
            audit.append(
                conn, action=AuditAction.EMERGENCY_ACCESS_USED, actor=who.actor, tenant_id=who.tenant_id,
                target=who.user_id, details={"grant": who.emergency, "method": method, "path": path[:300]},
            )  # fmt: skip
