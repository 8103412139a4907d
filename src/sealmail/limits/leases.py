"""Hits counted ahead: a block of a window's hits reserved in one statement, handed out from memory.

A shared counter (``limits.database``) costs a statement and a thread hop per request; with a
large limit (an API key's thousands a minute) most of that buys nothing.  So a process reserves
a block of hits at once (``hits = hits + block``) and gives its slots to the next requests
without I/O.  The limit still holds across processes: every slot is a distinct number counted
in the shared row, and a request is allowed only when its slot is within the limit, so no more
than ``limit`` are ever allowed in a window.  What a block costs is the other way round: slots
reserved here and not used before the window ends were counted anyway, so another process may
refuse a little early.  A block is therefore at most ``1/LEASE_SHARE`` of what the window has
left as last seen (and ``MAX_BLOCK``): near the limit, and for small limits (under 128: failed
authentications, sign-in steps, public links per address), it is one hit, counted exactly as
before.

A window known to be spent (a count past its limit was seen) refuses from memory too: a
window's count never goes down.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

# A block is at most this fraction of the window's remaining hits …
LEASE_SHARE = 64
# … and never more than this many hits.
MAX_BLOCK = 32


def block_size(limit: int, seen: int) -> int:
    """How many hits to reserve next, when the window's count was last seen at ``seen``."""
    return max(1, min(MAX_BLOCK, (limit - seen) // LEASE_SHARE))


@dataclass(slots=True)
class _Window:
    ends: float
    seen: int = 0
    free: deque[int] = field(default_factory=deque)


class Leases:
    """This process's reserved slots and the highest count it has seen, per window bucket."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def take(self, bucket: str, limit: int) -> int | None:
        """A count for one more hit without I/O: a reserved slot, or past the limit when the
        window is spent; ``None`` when a block must be claimed first."""
        with self._lock:
            window = self._windows.get(bucket)
            if window is None:
                return None
            if window.free:
                return window.free.popleft()
            if window.seen >= limit:
                window.seen += 1
                return window.seen
            return None

    def next_block(self, bucket: str, limit: int) -> int:
        window = self._windows.get(bucket)
        # The first claim of a window knows nothing of the count yet: one hit, as before.
        return 1 if window is None else block_size(limit, window.seen)

    def claimed(self, bucket: str, ends: float, total: int, block: int) -> int:
        """Record a claim whose statement returned ``total``; the first slot is the caller's."""
        first = total - block + 1
        with self._lock:
            window = self._windows.setdefault(bucket, _Window(ends))
            window.seen = max(window.seen, total)
            window.free.extend(range(first + 1, total + 1))
        return first

    def prune(self, now: float) -> None:
        with self._lock:
            self._windows = {b: w for b, w in self._windows.items() if w.ends > now}
