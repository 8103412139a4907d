"""The values of console sign-in: sessions, outcomes, policy and audit names."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sealmail.users import passwords, roles

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=15)  # the tenant's ``console_idle_minutes`` overrides it
    lifetime: timedelta = timedelta(hours=12)
    signin_window: timedelta = timedelta(minutes=10)  # between password and second factor
    lockout_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    link_ttl: timedelta = timedelta(days=3)
    auditor_days: int = 30


class Stage(enum.StrEnum):
    MFA = "mfa"
    ENROLL = "enroll"
    ACTIVE = "active"


class SignInStatus(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class SignIn:
    status: SignInStatus
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user (or one in the middle of signing in, by ``stage``)."""

    token_id: str
    tenant_id: str
    user_id: str
    email: str
    name: str
    role: str
    stage: Stage
    pending_secret: str | None = None
    # Break-glass: the live grant's id and end, while one is in force.
    emergency: str | None = None
    emergency_until: datetime | None = None

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}"

    def may(self, permission: roles.Permission) -> bool:
        if self.stage is not Stage.ACTIVE:
            return False
        if self.emergency is not None and permission not in roles.NEVER_IN_EMERGENCY:
            return True
        return roles.allows(self.role, permission)


@dataclass(frozen=True, slots=True)
class Enrolled:
    recovery_codes: list[str] = field(default_factory=list)
    refusal: passwords.Refusal | None = None
    bad_code: bool = False
