"""Rate limiting: the counter port, its in-process implementation, and the HTTP headers.

Limits are fixed windows: a key's hits are counted in the window ``floor(now / window)``
and the count starts over in the next one.  A fixed window lets a client send up to twice
the limit across a window boundary, which is acceptable for abuse control and costs one
atomic upsert per request, where a sliding log would cost a row per request.

The port is synchronous: the database implementation is a short SQL statement that the API
runs in its thread pool, and the in-process one is a dict under a lock.  ``cached_hit``
answers on the event loop whenever no I/O is needed (always in process; from hits reserved
ahead in the database, ``limits.leases``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

# Expired windows are dropped at most this often, so pruning costs nothing per request.
PRUNE_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one limit says now: ``count`` hits in a window of ``limit``, ``reset`` s left."""

    limit: int
    count: int
    window: int
    reset: int

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self, policy: str) -> dict[str, str]:
        """draft-ietf-httpapi-ratelimit-headers: the policy, and where this client stands in it.

        ``Retry-After`` (RFC 9110 §10.2.3) goes with a refusal only.
        """
        out = {
            "RateLimit-Policy": f'"{policy}";q={self.limit};w={self.window}',
            "RateLimit": f'"{policy}";r={self.remaining};t={self.reset}',
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset)
        return out


class Limiter(Protocol):
    """Counts hits per key in fixed windows."""

    def hit(self, key: str, limit: int, window: int) -> Verdict:
        """Count one hit for ``key`` and say whether it is within ``limit``."""
        ...

    def peek(self, key: str, limit: int, window: int) -> Verdict:
        """Where ``key`` stands, without counting a hit."""
        ...

    def cached_hit(self, key: str, limit: int, window: int) -> Verdict | None:
        """``hit`` when it can be answered without I/O (on the event loop), else None."""
        ...


def window_of(key: str, window: int, now: float) -> tuple[str, float, int]:
    """The bucket name of ``key``'s current window, when that window ends, and seconds left."""
    index = math.floor(now / window)
    ends = (index + 1) * window
    return f"{key}@{window}:{index}", float(ends), max(1, math.ceil(ends - now))


class MemoryLimiter:
    """Counters in this process only: right for SQLite, where one process serves everything."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._pruned = time.time()

    def hit(self, key: str, limit: int, window: int) -> Verdict:
        now = time.time()
        bucket, ends, reset = window_of(key, window, now)
        with self._lock:
            self._prune(now)
            count = self._counts.get(bucket, (0, ends))[0] + 1
            self._counts[bucket] = (count, ends)
        return Verdict(limit, count, window, reset)

    def cached_hit(self, key: str, limit: int, window: int) -> Verdict:
        return self.hit(key, limit, window)  # a dict under a lock: never any I/O

    def peek(self, key: str, limit: int, window: int) -> Verdict:
        bucket, _, reset = window_of(key, window, time.time())
        with self._lock:
            count = self._counts.get(bucket, (0, 0.0))[0]
        return Verdict(limit, count, window, reset)

    def _prune(self, now: float) -> None:
        if now - self._pruned < PRUNE_EVERY_SECONDS:
            return
        self._pruned = now
        for bucket in [b for b, (_, ends) in self._counts.items() if ends <= now]:
            del self._counts[bucket]


class FailureThrottle:
    """Failed attempts counted under several keys (a client address, an account); any key at
    its limit refuses the next attempt before it is checked, so checking costs nothing then."""

    def __init__(self, limiter: Limiter, limit: int, window: int) -> None:
        self.limiter = limiter
        self.limit = limit
        self.window = window

    def refused(self, keys: list[str]) -> Verdict | None:
        """The refusal to answer with (``Retry-After`` from it), or None to go ahead."""
        for key in keys:
            seen = self.limiter.peek(key, self.limit, self.window)
            if seen.count >= self.limit:
                return Verdict(self.limit, seen.count + 1, self.window, seen.reset)
        return None

    def failed(self, keys: list[str]) -> None:
        for key in keys:
            self.limiter.hit(key, self.limit, self.window)
