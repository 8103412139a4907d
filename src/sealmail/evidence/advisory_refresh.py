"""The OSV advisories refreshed by the workers on a schedule (``osv_refresh_minutes``).

``sealmail evidence deps --refresh`` asks OSV by hand; without a schedule the packs' "advisories
as of" time only grows.  Workers tick (``runtime.run_advisory_refresh``); once per period one of
them claims the period in ``scheduled_runs`` and refreshes the cache (``dependencies.py``).

The cache is a file in the worker's home, so the claim is per host and cache file (``job_for``):
workers sharing a home refresh it once per period, and each host's own cache is refreshed.  A
failed refresh stores nothing — the packs keep the previous answer and say how old it is — and
is logged with the time of the answer kept; the next period tries again.  A claim whose worker
stopped mid-refresh is given back (or, if the worker died, closed as failed a period later).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy.engine import Engine

from sealmail.evidence.claims import Claims
from sealmail.evidence.dependencies import DependencyAudit
from sealmail.evidence.schedule import period_of

log = structlog.get_logger("sealmail.evidence")


class Refreshed(enum.StrEnum):
    """What a tick that claimed its period did."""

    STORED = "stored"  # a new answer is in the cache
    FAILED = "failed"  # OSV could not be asked (or answered badly): the old answer stays
    NO_LOCK = "no_lock"  # no lock file to audit


def job_for(cache_file: Path | None) -> str:
    """The claim's job name: one per host and cache file (``scheduled_runs.job`` is 40 wide)."""
    where = f"{socket.gethostname()}:{cache_file}".encode()
    return "osv_refresh:" + hashlib.sha256(where).hexdigest()[:20]


class AdvisoryRefresh:
    def __init__(self, audit: DependencyAudit, engine: Engine, every: timedelta, owner: str) -> None:
        self.audit = audit
        self.every = every
        self.claims = Claims(engine, job_for(audit.cache_file), owner)

    async def tick(self, now: datetime | None = None) -> Refreshed | None:
        """Refresh if this period is unclaimed; what happened, or None (another worker's)."""
        now = now or datetime.now(UTC)
        for lost in await asyncio.to_thread(self.claims.abandoned, now - self.every):
            log.warning("evidence.advisories_refresh_abandoned", period=lost.period, worker=lost.claimed_by)
        period = period_of(now, self.every)
        if not await asyncio.to_thread(self.claims.take, period):
            return None
        try:
            outcome = await self._refresh(period)
        except asyncio.CancelledError:
            # The worker is stopping: give the period back so the next worker up refreshes.
            self.claims.release(period)
            raise
        await asyncio.to_thread(self.claims.finish, period, outcome is Refreshed.STORED)
        return outcome

    async def _refresh(self, period: str) -> Refreshed:
        lock_text = self.audit.lock_text()
        if lock_text is None:
            log.warning("evidence.advisories_no_lock_file", period=period)
            return Refreshed.NO_LOCK
        try:
            snap = await self.audit.refresh_async(lock_text)
        except Exception as exc:  # noqa: BLE001 — whatever stopped it, the old answer stays: say so
            kept = self.audit.snapshot()
            log.warning(
                "evidence.advisories_refresh_failed",
                period=period,
                error=type(exc).__name__,
                reason=str(exc)[:200],
                kept_as_of=kept.fetched_at if kept else None,
            )
            return Refreshed.FAILED
        log.info("evidence.advisories_refreshed", period=period, findings=len(snap.findings))
        return Refreshed.STORED
