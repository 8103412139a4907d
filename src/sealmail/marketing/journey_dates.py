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

A sweep covers every day since the last one it recorded for the journey, not just today:
a worker that was down on someone's birthday enrols them the next day instead of never
(``MAX_CATCH_UP_DAYS`` bounds it, so a journey revived after months does not mail a season
of stale birthdays).  Today is swept on every tick (a date stored or changed after the
first tick of the day still triggers); the days swept are recorded in ``scheduled_runs``
(job ``jdates:{journey}``, period the day), in the transaction that enrols them, so a
crash leaves the day to be swept again, never marked done without its enrollments.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from sealmail.evidence.tables import scheduled_runs
from sealmail.marketing import journey_events as ev
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.store import db

MODES = ("exact", "anniversary")
MAX_CATCH_UP_DAYS = 31
SWEEPER = "journeys.enroll_dates"


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


def days_to_sweep(last: str | None, created: date, today: date) -> list[date]:
    """From the last day recorded (swept again: today is swept every tick), or the journey's
    first day, through today; never more than ``MAX_CATCH_UP_DAYS``."""
    first = date.fromisoformat(last) if last else created
    first = max(first, today - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=i) for i in range((today - first).days + 1)]


def sweep(engine: Engine, tenant_id: str, journey: Any, today: date) -> int:
    """Enrol the contacts a date-triggered journey's missed days and today trigger."""
    trig = journey.definition["trigger"]
    attr, mode, ahead = trig["attr"], trig.get("mode", "exact"), int(trig.get("days_before", 0))
    with db.reader(engine) as conn:
        last = conn.execute(
            sa.select(sa.func.max(scheduled_runs.c.period)).where(scheduled_runs.c.job == job(journey.id))
        ).scalar()
    total = 0
    for day in days_to_sweep(last, journey.created_at.astimezone(UTC).date(), today):
        occurrence = day + timedelta(days=ahead)
        try:
            with db.write(engine) as conn:
                ids = list(
                    conn.execute(
                        sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, matches(attr, mode, occurrence))
                    ).scalars()
                )
                key = f"date:{attr}:{occurrence.isoformat()}"
                total += ev.enroll(conn, tenant_id, [journey.id], ids, key, "system")
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
