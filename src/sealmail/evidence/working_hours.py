"""A tenant's working hours: the time zone, hours and weekdays its staff normally sign in.

The monthly activity review queues every staff sign-in outside them (164.308(a)(5)(ii)(C),
log-in monitoring, read in the review).  Kept in the tenant's settings under
``working_hours``; changing them is audited with the before and after.  A clinic in
Honolulu and one in New York each get their own evenings, not UTC's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest, NotFound
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


def save(engine: Engine, tenant_id: str, hours: WorkingHours, actor: str) -> WorkingHours:
    """Store the tenant's working hours; audited (before and after) in the same transaction."""
    hours = hours.check()
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(tenants.c.settings).where(tenants.c.id == tenant_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"tenant {tenant_id} not found")
        settings = dict(row.settings or {})
        before = settings.get(KEY)
        settings[KEY] = {**asdict(hours), "weekdays": list(hours.weekdays)}
        conn.execute(sa.update(tenants).where(tenants.c.id == tenant_id).values(settings=settings))
        audit.append(
            conn,
            action=AuditAction.WORKING_HOURS_SET,
            actor=actor,
            tenant_id=tenant_id,
            target=tenant_id,
            details={"before": before, "after": settings[KEY]},
        )
    return hours
