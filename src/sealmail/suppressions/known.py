"""Intake's suppression check without a query when nobody in the batch is on the list.

Almost every accepted recipient has no suppression entry.  Per database and tenant this
process keeps the set of addresses that have an entry of any kind (active or expired,
any stream), read inside a commit's own transaction at most once per ``SECONDS``.  A batch
whose addresses are all outside a fresh set needs no lookup; an address in the set is
looked up in the transaction as before, so an entry that exists is never answered from
memory — only the absence of one is.

How stale "absent" can be:

* an entry written in this process (``suppress``) counts at once: it is added to the
  set while its transaction is open (``added``) and stays there until a read of the set
  has seen it committed (a rolled-back one only costs lookups of that address);
* an entry written by another process (a worker recording a hard bounce, the API of a
  split deployment) is seen within ``SECONDS`` of its commit.

A tenant with more than ``MAX_ADDRESSES`` entries is not summarised: every batch looks up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.suppressions.rules import SuppressionReason, normalize
from sealmail.suppressions.screening import lookup
from sealmail.suppressions.tables import suppressions as sup

__all__ = ["SECONDS", "KnownAddresses", "known"]

# How long another process's new entry may go unseen by intake (documented in the
# configuration reference and the module docstring above).
SECONDS = 1.0
# A tenant with more entries than this is not summarised: its batches look up every time.
MAX_ADDRESSES = 10_000
# Unconfirmed additions kept per tenant; past this the tenant is no longer summarised in
# this process (a process that writes entries but never reads the sets, like a worker,
# or a run of rolled-back writes, would otherwise grow it without end).
MAX_ADDED = 1_000

Found = dict[tuple[str, str], dict[str, SuppressionReason]]

# Built once (every stale tenant of a batch reads it).
_ENTRIES = (
    sa.select(sup.c.address, sup.c.stream, sup.c.reason, sup.c.expires_at)
    .where(sup.c.tenant_id == sa.bindparam("b_tenant"))
    .limit(MAX_ADDRESSES + 1)
)


@dataclass(frozen=True, slots=True)
class _Set:
    read_at: float  # when the read that filled it began
    addresses: frozenset[str] | None  # None: too many to summarise


class KnownAddresses:
    """Per (database, tenant): the addresses with a suppression entry, for ``SECONDS``."""

    def __init__(self, seconds: float = SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sets: dict[tuple[str, str], _Set] = {}
        self._added: dict[tuple[str, str], set[str]] = {}
        self._overflowed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def added(self, conn: Connection, tenant_id: str, address: str) -> None:
        """An entry for ``address`` is being written in ``conn``'s open transaction."""
        key = (str(conn.engine.url), tenant_id)
        with self._lock:
            if key in self._overflowed:
                return
            added = self._added.setdefault(key, set())
            added.add(normalize(address))
            if len(added) > MAX_ADDED:
                self._overflowed.add(key)
                del self._added[key]

    def lookup(
        self, conn: Connection, pairs: Iterable[tuple[str, str]], now: datetime | None = None
    ) -> Found:
        """``screening.lookup``'s answer, inside the caller's (write) transaction.

        At most one statement per tenant whose set is stale, plus one lookup for the
        addresses that are in a fresh set (usually neither).
        """
        now = now or datetime.now(UTC)
        database = str(conn.engine.url)
        by_tenant: dict[str, set[str]] = {}
        for tenant_id, address in pairs:
            by_tenant.setdefault(tenant_id, set()).add(normalize(address))
        found: Found = {}
        ask: list[tuple[str, str]] = []
        for tenant_id, addresses in by_tenant.items():
            on_record = self._fresh(database, tenant_id)
            if on_record is None:
                on_record = self._refill(conn, database, tenant_id, addresses, now, found)
            if on_record is None:
                ask += [(tenant_id, a) for a in addresses]
            else:
                ask += [(tenant_id, a) for a in addresses if a in on_record]
        if ask:
            found.update(lookup(conn, ask, now))
        return found

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()
            self._added.clear()
            self._overflowed.clear()

    def _fresh(self, database: str, tenant_id: str) -> frozenset[str] | None:
        """The tenant's addresses on record (this process's pending additions included), or
        None when that is not known (stale, never read, too large)."""
        key = (database, tenant_id)
        kept = self._sets.get(key)
        if kept is None or kept.addresses is None or kept.read_at + self.seconds <= self._clock():
            return None
        with self._lock:
            if key in self._overflowed:
                return None
            added = self._added.get(key)
            return kept.addresses if added is None else kept.addresses | added

    def _refill(
        self, conn: Connection, database: str, tenant_id: str, asked: set[str], now: datetime, found: Found
    ) -> frozenset[str] | None:
        """Read the tenant's entries in ``conn``'s transaction; answer ``asked`` from them into
        ``found``.  Returns the addresses still to look up: none, or None when too many."""
        key = (database, tenant_id)
        read_at = self._clock()
        rows = conn.execute(_ENTRIES, {"b_tenant": tenant_id}).all()
        if len(rows) > MAX_ADDRESSES:
            self._keep(key, _Set(read_at, None), frozenset())
            return None
        for r in rows:
            if r.address in asked and (r.expires_at is None or r.expires_at > now):
                found.setdefault((tenant_id, r.address), {})[r.stream] = SuppressionReason(r.reason)
        self._keep(key, _Set(read_at, frozenset(r.address for r in rows)), frozenset(r.address for r in rows))
        return frozenset()

    def _keep(self, key: tuple[str, str], new: _Set, seen: frozenset[str]) -> None:
        with self._lock:
            old = self._sets.get(key)
            if old is not None and old.read_at > new.read_at:
                return  # a later read is already kept
            self._sets[key] = new
            added = self._added.get(key)
            if added is not None:
                added -= seen  # committed, so the kept set has them
                if not added:
                    del self._added[key]


# The process's one instance: ``suppress`` tells it about every entry it writes, whichever
# service's transaction that is, and intake's group commit asks it.
known = KnownAddresses()
