"""Once-per-period claims of scheduled jobs (``scheduled_runs``): the restore drill, the OSV
advisory refresh.

A worker claims a period by inserting its row; the primary key ``(job, period)`` is the claim,
so however many workers tick, one runs the period's job.  The row is closed (``finished_at``,
``ok``) when the job ends.  A worker that dies mid-job leaves its row open: ``abandoned()``
closes every open row older than one period as failed and names it, so the next check reports
the missing result (a drill register with a silent gap would read as "nothing happened").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from sealmail.evidence.tables import scheduled_runs
from sealmail.store import db


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A claimed period whose job never reported: its worker stopped (or it outran its period)."""

    period: str
    claimed_by: str
    claimed_at: datetime


class Claims:
    """The claims of one job (``job``, at most 40 characters) made by one worker (``owner``)."""

    def __init__(self, engine: Engine, job: str, owner: str) -> None:
        self.engine = engine
        self.job = job[:40]
        self.owner = owner[:80]

    def _row(self, period: str) -> sa.ColumnElement[bool]:
        return sa.and_(scheduled_runs.c.job == self.job, scheduled_runs.c.period == period)

    def take(self, period: str) -> bool:
        """Claim ``period``; False when it is already claimed (by any worker, finished or not)."""
        with db.reader(self.engine) as conn:
            if conn.execute(sa.select(scheduled_runs.c.period).where(self._row(period))).first():
                return False  # the cheap check every tick makes; the primary key is the real guard
        try:
            with db.write(self.engine) as conn:
                conn.execute(
                    sa.insert(scheduled_runs).values(
                        job=self.job, period=period, claimed_by=self.owner, claimed_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            return False  # another worker's (or already done)
        return True

    def finish(self, period: str, ok: bool) -> bool:
        """Close the claim with its result; False when it was already closed as abandoned (the
        job outran its period and a later check reported it failed: that report stands)."""
        with db.write(self.engine) as conn:
            done = conn.execute(
                sa.update(scheduled_runs)
                .where(self._row(period), scheduled_runs.c.finished_at.is_(None))
                .values(finished_at=datetime.now(UTC), ok=ok)
            )
        return done.rowcount == 1

    def release(self, period: str) -> None:
        """Give an unfinished claim back (the worker is stopping): the next tick, on any
        worker, claims the period again instead of leaving it without a result."""
        with db.write(self.engine) as conn:
            conn.execute(
                sa.delete(scheduled_runs).where(
                    self._row(period),
                    scheduled_runs.c.claimed_by == self.owner,
                    scheduled_runs.c.finished_at.is_(None),
                )
            )

    def abandoned(self, claimed_before: datetime) -> list[Abandoned]:
        """Close as failed every claim of this job still open and made before ``claimed_before``;
        the ones this call closed (each is closed, and so reported, by exactly one worker)."""
        query = sa.select(
            scheduled_runs.c.period, scheduled_runs.c.claimed_by, scheduled_runs.c.claimed_at
        ).where(
            scheduled_runs.c.job == self.job,
            scheduled_runs.c.finished_at.is_(None),
            scheduled_runs.c.claimed_at < claimed_before,
        )
        with db.reader(self.engine) as conn:
            stale = [Abandoned(r.period, r.claimed_by, r.claimed_at) for r in conn.execute(query)]
        return [lost for lost in stale if self.finish(lost.period, ok=False)]
