"""A tenant's access-review settings: its working hours (the time zone, hours and weekdays its
staff normally sign in) and its large-read threshold.

The monthly activity review queues every staff sign-in outside those hours (164.308(a)(5)(ii)(C),
log-in monitoring, read in the review), and once a day per person whose content reads reach
the threshold.  Kept in the tenant's settings under ``working_hours``; changing them is audited
with the before and after.  A clinic in Honolulu and one in New York each get their own
evenings, not UTC's.  ``review_settings()`` is the one check of what a person asks for, from
the console's form, the API's body or the CLI's options alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain import zones
from sealmail.errors import InvalidRequest
from sealmail.store import db
from sealmail.store.tables import tenants

KEY = "working_hours"
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# One person reading this much content in one local day is queued as a large read (default).
LARGE_READS = 50
MAX_LARGE_READS = 10_000


@dataclass(frozen=True, slots=True)
class WorkingHours:
    time_zone: str = "UTC"
    start: int = 7  # first working hour, local time
    end: int = 19  # first hour no longer working (exclusive)
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0

    def check(self) -> WorkingHours:
        try:
            zones.zone(self.time_zone)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
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


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """What the activity review applies for a tenant."""

    hours: WorkingHours = WorkingHours()
    large_reads: int = LARGE_READS


def review_settings(
    time_zone: object, start: object, end: object, weekdays: Iterable[object], large_reads: object
) -> ReviewSettings:
    """Access-review settings as a person asked for them, checked; a 400 problem says what is wrong.

    Values arrive as form strings (console), JSON numbers (API) or options (CLI): each is read as
    a whole number the same way, so all three accept and refuse exactly the same input."""
    try:
        hours = WorkingHours(
            str(time_zone).strip()[:64],
            _whole(start),
            _whole(end),
            tuple(sorted({_whole(d) for d in weekdays})),
        )
    except ValueError as exc:
        raise InvalidRequest("working hours: whole hours from 0 to 24, weekdays 0 (Monday) to 6") from exc
    try:
        reads = _whole(large_reads)
    except ValueError as exc:
        raise InvalidRequest(f"large-read threshold: a whole number from 1 to {MAX_LARGE_READS}") from exc
    if not 1 <= reads <= MAX_LARGE_READS:
        raise InvalidRequest(f"large-read threshold: a whole number from 1 to {MAX_LARGE_READS}")
    return ReviewSettings(hours.check(), reads)


def _whole(value: object) -> int:
    # bool is an int to Python but never a number of hours; "7.5" and "" are refused by int().
    if isinstance(value, bool):
        raise ValueError("not a number")
    return int(str(value).strip())


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


def _threshold(value: object) -> int:
    reads = value.get("large_reads") if isinstance(value, dict) else None
    if isinstance(reads, int) and not isinstance(reads, bool) and 1 <= reads <= MAX_LARGE_READS:
        return reads
    return LARGE_READS  # absent or damaged: the default, never "no large reads queued"


def read(engine: Engine, tenant_id: str) -> ReviewSettings:
    with db.reader(engine) as conn:
        settings = conn.execute(sa.select(tenants.c.settings).where(tenants.c.id == tenant_id)).scalar()
    stored = dict(settings or {}).get(KEY)
    return ReviewSettings(_parse(stored), _threshold(stored))


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


def save(write: SettingsWriter, tenant_id: str, wanted: ReviewSettings, actor: str) -> ReviewSettings:
    """Store the tenant's access-review settings; audited (before and after) in the same transaction."""
    hours = wanted.hours.check()
    if not 1 <= wanted.large_reads <= MAX_LARGE_READS:
        raise InvalidRequest(f"large-read threshold: a whole number from 1 to {MAX_LARGE_READS}")

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

    stored = {**asdict(hours), "weekdays": list(hours.weekdays), "large_reads": wanted.large_reads}
    write(tenant_id, {KEY: stored}, actor, also=audited)
    return ReviewSettings(hours, wanted.large_reads)
