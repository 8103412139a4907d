"""A cache for key-discovery answers, including the answer "there is no key".

Discovery runs once per recipient of every message, and most recipients publish no
key, so the expensive case is the negative one: without a negative cache every
message to a Gmail user costs a WKD round trip.  Entries are keyed by
``(method, address)`` and carry their own expiry; how long each kind lives is a
:class:`DiscoveryTtl` (found: a day, not found: an hour, errors: five minutes, so a
flapping server is retried soon but not hammered).

:class:`DiscoveryCache` is the port; :class:`InMemoryDiscoveryCache` is the
process-local implementation, and a database-backed one can replace it.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


class DiscoveryStatus(enum.StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"  # the source answered and has no key for the address
    ERROR = "error"  # the source could not answer (timeout, TLS, 5xx, blocked address …)


@dataclass(frozen=True, slots=True)
class DiscoveryTtl:
    """How many seconds each kind of answer stays cached."""

    found: float = 86_400.0
    not_found: float = 3_600.0
    error: float = 300.0

    def for_status(self, status: DiscoveryStatus) -> float:
        if status is DiscoveryStatus.FOUND:
            return self.found
        if status is DiscoveryStatus.NOT_FOUND:
            return self.not_found
        return self.error


DEFAULT_TTL = DiscoveryTtl()


@dataclass(frozen=True, slots=True)
class DiscoveryEntry:
    """One cached answer.  ``source`` says where a key came from (e.g. WKD "advanced")."""

    status: DiscoveryStatus
    cert: bytes | None
    source: str | None
    detail: str
    fetched_at: float  # epoch seconds
    expires_at: float

    @classmethod
    def create(
        cls,
        status: DiscoveryStatus,
        *,
        now: float,
        ttl: DiscoveryTtl = DEFAULT_TTL,
        cert: bytes | None = None,
        source: str | None = None,
        detail: str = "",
    ) -> DiscoveryEntry:
        return cls(status, cert, source, detail, now, now + ttl.for_status(status))


def cache_key(method: str, address: str) -> tuple[str, str]:
    """The normalised key: discovery treats addresses case-insensitively (WKD lowercases)."""
    return method.lower(), address.strip().lower()


class DiscoveryCache(Protocol):
    """Where discovery answers live between lookups (port; see InMemoryDiscoveryCache)."""

    async def get(self, method: str, address: str, *, now: float) -> DiscoveryEntry | None:
        """The entry for ``(method, address)`` if it has not expired at ``now``."""
        ...

    async def put(self, method: str, address: str, entry: DiscoveryEntry) -> None: ...


class InMemoryDiscoveryCache:
    """A process-local :class:`DiscoveryCache`, bounded to ``max_entries`` (oldest out first)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[tuple[str, str], DiscoveryEntry] = OrderedDict()
        self._max_entries = max_entries

    async def get(self, method: str, address: str, *, now: float) -> DiscoveryEntry | None:
        key = cache_key(method, address)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    async def put(self, method: str, address: str, entry: DiscoveryEntry) -> None:
        key = cache_key(method, address)
        self._entries.pop(key, None)
        self._entries[key] = entry
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
