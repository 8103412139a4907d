"""Signed-in sessions: looked up and touched per request, ended by idling, lifetime or sign-out
(45 CFR 164.312(a)(2)(iii) automatic logoff)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.store.tables import tenants
from sealmail.users.base import UsersBase, sha
from sealmail.users.model import Session, Stage
from sealmail.users.tables import console_emergency, console_sessions, console_users


class Sessions(UsersBase):
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
                .where(cs.id == sha(token))
            ).first()  # fmt: skip
            if row is None or row.ended_at is not None or row.stage != stage:
                return None, "none"
            why = self._ended_why(row, now)
            conn.execute(
                sa.update(console_sessions)
                .where(cs.id == row.id)
                .values(**({"ended_at": now} if why else {"last_seen_at": now}))
            )
            grant = None if why else self._emergency_grant(conn, row.user_id, now)
        if why:
            return None, why
        return Session(
            row.id, row.tenant_id, row.user_id, row.email, row.name, row.role, Stage(row.stage),
            emergency=grant.id if grant else None, emergency_until=grant.expires_at if grant else None,
        ), "ok"  # fmt: skip

    @staticmethod
    def _emergency_grant(conn: Connection, user_id: str, now: datetime) -> Any:
        ce = console_emergency.c
        return conn.execute(
            sa.select(ce.id, ce.expires_at)
            .where(ce.user_id == user_id, ce.ended_at.is_(None), ce.expires_at > now)
            .order_by(ce.granted_at.desc())
            .limit(1)
        ).first()

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
                    console_sessions.c.id == sha(token), console_sessions.c.ended_at.is_(None)
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
