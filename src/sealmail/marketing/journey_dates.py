"""Date-attribute triggers: which contacts a day's sweep enrols, and days a sweep missed.

A ``date_attribute`` trigger names a declared date attribute, ``days_before`` (0–366) and a
``mode``:

* ``exact`` (the default): the stored date is ``day + days_before`` — a recall due, an
  appointment, a renewal: one date, one enrollment.
* ``anniversary``: the stored date's month and day are those of ``day + days_before``, in
  any earlier year — a birthday, a membership anniversary: once a year.  A 29 February date
  comes round on 28 February in a year without one (so a leap-day birthday is never
  skipped), and a stored date not before the occurrence (a birthday today, a date in the
  future) has no anniversary yet.

Each occurrence is its own trigger key, ``date:{attr}:{occurrence}``, so the enrollment's
unique constraint enrols a contact once per journey and occurrence however many sweeps
run (several workers, a re-sweep of today).

Days are the contact's own (``mkt_contacts.tz``): a patient in Honolulu is enrolled for
their 5 December birthday once 5 December has begun in Honolulu (10:00 UTC), not at 00:00
UTC, 14:00 on the 4th at home.  A sweep reads the tenant's distinct zones (few values),
works out in Python which of them have reached a day at ``now``, and enrols for that day
only contacts whose ``tz`` is among those — no per-contact work in Python.  A stored zone
that names no IANA zone counts as UTC rather than stopping the sweep.  The first zone to
reach a day is UTC+14 (at 10:00 UTC the day before), the last UTC−12 (at 12:00 UTC on the
day): so the days swept run through the date in the furthest-ahead of the tenant's zones,
and a day is *complete* — begun everywhere, its contacts no longer filtered by zone — from
12:00 UTC on it.

A sweep covers every day since the last one it recorded for the journey, not just today:
a worker that was down on someone's birthday enrols them the next day instead of never
(``MAX_CATCH_UP_DAYS`` bounds it, so a journey revived after months does not mail a season
of stale birthdays).  Days not yet complete are swept on every tick, and so is the last
day recorded while it is still that day in one of the tenant's zones (it is recorded at
12:00 UTC), so a date stored or changed after the first tick of the day still triggers.
Only complete days are recorded in ``scheduled_runs`` (job ``jdates:{journey}``, period
the day), in the transaction that enrols them, so a crash leaves the day to be swept
again, never marked done without its enrollments; a day swept on several ticks enrols
each contact once, by the trigger key.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from sealmail.domain import zones
from sealmail.evidence.tables import scheduled_runs
from sealmail.marketing import journey_events as ev
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.store import db

MODES = ("exact", "anniversary")
MAX_CATCH_UP_DAYS = 31
SWEEPER = "journeys.enroll_dates"
# A day begins last at UTC−12 (Baker Island): 12 hours after it begins in UTC.
LAST_BEGINS = timedelta(hours=12)


def job(journey_id: str) -> str:
    return f"jdates:{journey_id}"[:40]


def month_days(occurrence: date) -> list[str]:
    """The ``MM-DD`` of stored dates whose anniversary falls on ``occurrence``."""
    days = [occurrence.strftime("%m-%d")]
    if (occurrence.month, occurrence.day) == (2, 28) and not calendar.isleap(occurrence.year):
        days.append("02-29")  # leap-day dates come round on 28 February
    return days


def matches(attr: str, mode: str, occurrence: date) -> sa.ColumnElement[bool]:
    """Contacts whose ``attr`` (a stored ``YYYY-MM-DD``) triggers on ``occurrence``."""
    value: sa.ColumnElement[str] = ct.c.attrs[attr].as_string()
    if mode == "anniversary":
        month_day = sa.func.substr(value, 6, 5)
        return sa.and_(value < occurrence.isoformat(), month_day.in_(month_days(occurrence)))
    return value == occurrence.isoformat()


def days_to_sweep(last: str | None, created: date, through: date) -> list[date]:
    """From the last day recorded (swept again), or the journey's first day, through
    ``through`` (the date in the tenant's furthest-ahead zone); never more than
    ``MAX_CATCH_UP_DAYS``."""
    first = date.fromisoformat(last) if last else created
    first = max(first, through - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=i) for i in range((through - first).days + 1)]


def local_dates(names: list[str], now: datetime) -> dict[str, date]:
    """Each stored zone name's date at ``now`` (a name that is no zone: UTC's)."""
    return {name: now.astimezone(zones.stored_zone(name)).date() for name in names}


def tenant_dates(conn: Connection, tenant_id: str, now: datetime) -> dict[str, date]:
    """The date at ``now`` in each zone the tenant's contacts live in."""
    names = conn.execute(sa.select(ct.c.tz).where(ct.c.tenant_id == tenant_id).distinct()).scalars()
    return local_dates(sorted(names), now)


def complete(day: date, now: datetime) -> bool:
    """Whether ``day`` has begun in every zone, UTC−12 the last."""
    return now >= datetime.combine(day, time(), UTC) + LAST_BEGINS


def sweep(engine: Engine, tenant_id: str, journey: Any, now: datetime, dates: Mapping[str, date]) -> int:
    """Enrol the contacts a date-triggered journey's missed days and current days trigger,
    each once its day has begun in the contact's zone (``dates``: ``tenant_dates``)."""
    trig = journey.definition["trigger"]
    attr, mode, ahead = trig["attr"], trig.get("mode", "exact"), int(trig.get("days_before", 0))
    with db.reader(engine) as conn:
        last = conn.execute(
            sa.select(sa.func.max(scheduled_runs.c.period)).where(scheduled_runs.c.job == job(journey.id))
        ).scalar()
    through = max(dates.values(), default=now.astimezone(UTC).date())
    total = 0
    for day in days_to_sweep(last, journey.created_at.astimezone(UTC).date(), through):
        if day.isoformat() == last and all(local > day for local in dates.values()):
            continue  # recorded, and over wherever the tenant's contacts live: nothing new
        done = complete(day, now)
        begun = [name for name, local in dates.items() if local >= day]
        if not done and not begun:
            continue
        occurrence = day + timedelta(days=ahead)
        query = sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, matches(attr, mode, occurrence))
        if not done:
            # Filtered by the zones read, never "all but": a contact saved since in a
            # zone still short of the day waits for a later tick.
            query = query.where(ct.c.tz.in_(begun))
        # The scan (every contact's date attribute: ~0.4 s at a million) runs outside the
        # write transaction, which on SQLite would hold intake's write lock for all of it.
        # A date stored between the two is still current somewhere for hours after a day
        # is recorded, and the day's re-sweeps (above) pick it up.
        with db.reader(engine) as conn:
            ids = list(conn.execute(query).scalars())
        try:
            with db.write(engine) as conn:
                key = f"date:{attr}:{occurrence.isoformat()}"
                total += ev.enroll(conn, tenant_id, [journey.id], ids, key, "system")
                if done:
                    _record(conn, journey.id, day)
        except IntegrityError:
            continue  # another worker enrolled one of them meanwhile: its sweep stands
    return total


def _record(conn: Connection, journey_id: str, day: date) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    now = datetime.now(UTC)
    conn.execute(
        insert(scheduled_runs)
        .values(job=job(journey_id), period=day.isoformat(), claimed_by=SWEEPER, claimed_at=now,
                finished_at=now, ok=True)
        .on_conflict_do_nothing(index_elements=["job", "period"])
    )  # fmt: skip
