"""The daily TLS report run inside the worker role (RFC 8460 §4.1: one report per UTC day).

Every worker process ticks; the first to claim the day in ``tlsrpt_runs`` (an INSERT, whose
primary key is the day) sends yesterday's reports, on whichever host it runs.  A claim has a
lease: a process that dies mid-run leaves a claim another one takes over once the lease ran
out.  Sending is itself idempotent per (tenant, policy domain, day, endpoint), so a takeover
or a retry never sends a report twice.  When an endpoint failed, the day is released for a
retry an hour later, until the end of the following day (RFC 8460 §5.1 leaves the
schedule to the sender; a report two days late is of little use).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from sealmail.store import db
from sealmail.tlsrpt.sender import Delivery
from sealmail.tlsrpt.tables import tlsrpt_runs

log = structlog.get_logger("sealmail.tlsrpt")

# How long a claim holds before another process may take the day over.
LEASE = timedelta(hours=1)
# After a failed endpoint, when the day is tried again; and until when.
RETRY_AFTER = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(days=2)


class ReportSender(Protocol):
    async def run(self, day: date) -> list[Delivery]: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one claimed run did."""

    day: date
    sent: int
    failed: int
    finished: bool


class DailyRuns:
    """The ``tlsrpt_runs`` claims: one row per UTC day."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(self, day: date, owner: str, now: datetime) -> bool:
        """Whether ``owner`` may run ``day`` now: a fresh claim, or a stale one taken over."""
        lease_until = now + LEASE
        try:
            with db.write(self.engine) as conn:
                conn.execute(
                    sa.insert(tlsrpt_runs).values(
                        day=day, claimed_by=owner[:80], lease_until=lease_until, sent=0, failed=0
                    )
                )
            return True
        except IntegrityError:
            pass  # claimed before, by this process or another
        with db.write(self.engine) as conn:
            # The lease check is in the UPDATE itself: of two processes taking over the same
            # stale claim, only one changes the row.
            taken = conn.execute(
                sa.update(tlsrpt_runs)
                .where(
                    tlsrpt_runs.c.day == day,
                    tlsrpt_runs.c.finished_at.is_(None),
                    tlsrpt_runs.c.lease_until < now,
                )
                .values(claimed_by=owner[:80], lease_until=lease_until)
            )
            return taken.rowcount == 1

    def record(self, day: date, owner: str, sent: int, failed: int, now: datetime, *, finished: bool) -> None:
        """Finish the day, or release it (``lease_until``) for a retry after ``RETRY_AFTER``."""
        values: dict[str, object] = {"sent": tlsrpt_runs.c.sent + sent, "failed": failed}
        if finished:
            values["finished_at"] = now
        else:
            values["lease_until"] = now + RETRY_AFTER
        with db.write(self.engine) as conn:
            conn.execute(
                sa.update(tlsrpt_runs)
                .where(tlsrpt_runs.c.day == day, tlsrpt_runs.c.claimed_by == owner[:80])
                .values(**values)
            )

    def get(self, day: date) -> dict[str, object] | None:
        with db.reader(self.engine) as conn:
            row = conn.execute(sa.select(tlsrpt_runs).where(tlsrpt_runs.c.day == day)).first()
        return dict(row._mapping) if row is not None else None


class TlsReportScheduler:
    """Sends yesterday's reports once, from whichever worker claims the day first."""

    def __init__(
        self,
        runs: DailyRuns,
        sender: ReportSender,
        owner: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runs = runs
        self.sender = sender
        self.owner = owner
        self.clock = clock

    async def tick(self) -> RunResult | None:
        """Run the previous UTC day if this process claims it; None when it is not ours."""
        now = self.clock()
        day = (now - timedelta(days=1)).date()
        if not await asyncio.to_thread(self.runs.claim, day, self.owner, now):
            return None
        try:
            deliveries = await self.sender.run(day)
        except Exception as exc:  # noqa: BLE001 — the claim's lease runs out and another tick retries
            log.warning("tlsrpt.run_failed", day=day.isoformat(), error=type(exc).__name__)
            return None
        sent = sum(1 for d in deliveries if d.ok)
        failed = len(deliveries) - sent
        finished = failed == 0 or now >= datetime.combine(day, datetime.min.time(), UTC) + GIVE_UP_AFTER
        await asyncio.to_thread(self.runs.record, day, self.owner, sent, failed, now, finished=finished)
        log.info("tlsrpt.run", day=day.isoformat(), sent=sent, failed=failed, finished=finished)
        return RunResult(day, sent, failed, finished)


async def run_tlsrpt_scheduler(
    scheduler: TlsReportScheduler, stop: asyncio.Event, every_seconds: float
) -> None:
    """Tick until ``stop``; a tick that fails is logged and the next one tries again."""
    while not stop.is_set():
        try:
            await scheduler.tick()
        except Exception as exc:  # noqa: BLE001 — the scheduler must outlive a database hiccup
            log.warning("tlsrpt.tick_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)
