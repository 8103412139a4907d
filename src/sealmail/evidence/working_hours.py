"""A tenant's working hours: the time zone, hours and weekdays its staff normally sign in.

The monthly activity review queues every staff sign-in outside them (164.308(a)(5)(ii)(C),
log-in monitoring, read in the review).  Kept in the tenant's settings under
``working_hours``; changing them is audited with the before and after.  A clinic in
Honolulu and one in New York each get their own evenings, not UTC's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest
from sealmail.store import db
from sealmail.store.tables import tenants

KEY = "working_hours"
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class WorkingHours:
    time_zone: str = "UTC"
    start: int = 7  # first working hour, local time
    end: int = 19  # first hour no longer working (exclusive)
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0

    def check(self) -> WorkingHours:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidRequest(f"time zone {self.time_zone!r}: an IANA name like America/New_York") from exc
        if not (0 <= self.start < self.end <= 24):
            raise InvalidRequest("working hours: start before end, both between 0 and 24")
        if not self.weekdays or any(not 0 <= d <= 6 for d in self.weekdays):
            raise InvalidRequest("working days: at least one, Monday (0) to Sunday (6)")
        return self

    def outside(self, at: datetime) -> bool:
        """True when ``at`` falls outside these hours, in the tenant's own zone."""
        local = at.astimezone(ZoneInfo(self.time_zone))
        return local.weekday() not in self.weekdays or not self.start <= local.hour < self.end

    def describe(self) -> str:
        days = ", ".join(DAY_NAMES[d] for d in sorted(self.weekdays))
        return f"{days} {self.start:02d}:00–{self.end:02d}:00 {self.time_zone}"


def _parse(value: object) -> WorkingHours:
    if not isinstance(value, dict):
        return WorkingHours()
    try:
        return WorkingHours(
            str(value["time_zone"]),
            int(value["start"]),
            int(value["end"]),
            tuple(int(d) for d in value["weekdays"]),
        ).check()
    except (KeyError, TypeError, ValueError, InvalidRequest):
        return WorkingHours()  # a damaged setting falls back to the default, never to "no review"


def read(engine: Engine, tenant_id: str) -> WorkingHours:
    with db.reader(engine) as conn:
        settings = conn.execute(sa.select(tenants.c.settings).where(tenants.c.id == tenant_id)).scalar()
    return _parse(dict(settings or {}).get(KEY))


class SettingsWriter(Protocol):
    """``Tenancy.update_settings``: one transaction, the tenant's settings audit, the cache dropped."""

    def __call__(
        self,
        tenant_id: str,
        changes: dict[str, Any],
        actor: str,
        *,
        also: Callable[[Connection, str, str, dict[str, Any], dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]: ...


def save(write: SettingsWriter, tenant_id: str, hours: WorkingHours, actor: str) -> WorkingHours:
    """Store the tenant's working hours; audited (before and after) in the same transaction."""
    hours = hours.check()

    def audited(
        conn: Connection, tenant: str, who: str, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        details = {"before": before.get(KEY), "after": after[KEY]}
        audit.append(
            conn,
            action=AuditAction.WORKING_HOURS_SET,
            actor=who,
            tenant_id=tenant,
            target=tenant,
            details=details,
        )

    write(tenant_id, {KEY: {**asdict(hours), "weekdays": list(hours.weekdays)}}, actor, also=audited)
    return hours
