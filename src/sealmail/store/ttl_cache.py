"""A small in-process cache of database answers, fresh for a bounded number of seconds.

Hot paths (every SMTP ``MAIL FROM``, every delivery group) ask the same questions of the
database many times a second: which sender domains are verified, what a tenant's settings
are, which addresses have keys.  The answers change rarely, and only through a service
method, which drops the entry in its own process at once.  Other processes (``serve
--role smtp`` next to ``--role api``) see a change when their entry expires: the
staleness bound is the cache's ``seconds``, counted from *before* the read that filled it.

A read that started before an invalidation must not refill the cache with what it read
(it may be the old answer): ``stamp()`` before the read, ``put(key, value, stamp)`` after,
and the put is ignored when anything was dropped in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Stamp:
    """When a read began, and the cache's generation at that moment."""

    at: float
    generation: int


class TtlCache(Generic[K, V]):
    """Thread-safe ``key -> value``, each entry fresh for ``seconds`` after its read began."""

    def __init__(
        self, seconds: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value if it is still fresh, else None."""
        hit = self._entries.get(key)
        if hit is None or hit[0] <= self._clock():
            return None
        return hit[1]

    def stamp(self) -> Stamp:
        with self._lock:
            return Stamp(self._clock(), self._generation)

    def put(self, key: K, value: V, stamp: Stamp) -> None:
        with self._lock:
            if stamp.generation != self._generation:
                return  # dropped while the caller was reading: what it read may be stale
            if len(self._entries) >= self.max_entries and key not in self._entries:
                # Bounded memory: expired entries go first, everything if none had expired.
                now = self._clock()
                self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (stamp.at + self.seconds, value)

    def drop(self, key: K) -> None:
        """Forget ``key`` now (a change in this process), and void reads in flight."""
        with self._lock:
            self._generation += 1
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
