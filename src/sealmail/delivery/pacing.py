"""How fast the delivery worker goes: its flush and poll intervals, the back-off when the
database refuses or the queue is empty, and the per-destination token bucket."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

__all__ = [
    "CLAIM_GATHER_SECONDS",
    "FLUSH_BATCH",
    "FLUSH_LATEST",
    "FLUSH_MAX",
    "FLUSH_RETRY_MAX",
    "FLUSH_SECONDS",
    "IDLE_BACKOFF_MAX",
    "Bucket",
    "flush_delay",
    "flush_due",
    "idle_delay",
]

FLUSH_SECONDS = 0.05
FLUSH_MAX = 500
# A flush is a write transaction (the record, the destinations, the next claim).  Fewer outcomes
# than FLUSH_BATCH wait for more, up to FLUSH_LATEST after the oldest: with 16 workers on 2 cores
# each flushed ~5 outcomes 20 times a second, and those commits were most of PostgreSQL's CPU
# (issue 18).  One busy worker (>= 320 deliveries/s) still flushes every FLUSH_SECONDS.
FLUSH_BATCH = 16
FLUSH_LATEST = 0.25
# The longest wait between flushes while the database refuses them.
FLUSH_RETRY_MAX = 5.0


# Mail queued while a worker is still delivering waits this long for more before the worker
# claims it: the bell rings at every intake commit (2–3 messages on PostgreSQL), and a claim a
# commit was a transaction per few messages, ~15 % of the worker's CPU (issue 18).  A worker
# with nothing in flight claims at once, so a lone message is not delayed.
CLAIM_GATHER_SECONDS = 0.02

# An idle worker polls at ``worker_poll_seconds``, then ever more slowly, up to this many
# times that: every poll is a claim (a write transaction), and idle workers beyond the
# number of cores cost the database more than they deliver (issue 18: 16 workers, 2 cores).
IDLE_BACKOFF_MAX = 8


def idle_delay(poll_seconds: float, empty_claims: int) -> float:
    """How long to wait after ``empty_claims`` claims in a row found nothing (1, 2, 4 … × poll)."""
    return poll_seconds * min(1 << min(max(empty_claims - 1, 0), 10), IDLE_BACKOFF_MAX)


def flush_due(pending: int, oldest_age: float) -> bool:
    """Whether ``pending`` outcomes, the oldest ``oldest_age`` s old, are worth a transaction now."""
    return pending >= FLUSH_BATCH or (pending > 0 and oldest_age >= FLUSH_LATEST)


def flush_delay(failures: int) -> float:
    """Seconds before the next flush after ``failures`` refused in a row (0.05 s … 5 s)."""
    return min(FLUSH_SECONDS * (1 << min(failures, 7)), FLUSH_RETRY_MAX)


@dataclass
class Bucket:
    """A token bucket for one destination (messages per second)."""

    rate: float
    tokens: float = 1.0
    stamp: float = field(default_factory=time.monotonic)

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(max(self.rate, 1.0), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)
