"""Per tenant, the addresses that have a row of some kind — so "none of these" costs no read.

SecureLine asks three registers about every delivery group (keys, confidential-communication
preferences, plain-mail consents), and for almost every recipient the answer is "nothing
on record".  Each register keeps the tenant's set of addresses that *do* have a row here,
fresh for ``seconds`` (``TtlCache``: dropped at once by a change in the same process).  A
group whose addresses are all outside the set is answered from memory; any address in the
set is read from the database as before, so a row that exists is never served from memory
— only its absence is, for at most ``seconds`` after a change made by another process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail.store import db
from sealmail.store.ttl_cache import TtlCache

__all__ = ["AddressSet"]

# A tenant with more addresses on record than this is not summarised (every ask reads).
MAX_ADDRESSES = 10_000


class AddressSet:
    """The tenant's addresses with a row in ``table`` (matching ``where``), kept ``seconds``."""

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        **where: str,
    ) -> None:
        self.engine = engine
        # The table's ``address`` of the tenant's rows whose columns equal ``where``.
        self._query = (
            sa.select(table.c.address)
            .where(
                table.c.tenant_id == sa.bindparam("b_tenant"), *(table.c[k] == v for k, v in where.items())
            )
            .distinct()
            .limit(MAX_ADDRESSES + 1)
        )
        self._cache: TtlCache[str, tuple[frozenset[str] | None]] = TtlCache(seconds, clock=clock)

    def cached_none_of(self, tenant_id: str, addresses: Iterable[str]) -> bool:
        """True when the fresh cached set shows none of ``addresses`` has a row (no I/O, so
        the event loop may ask); False when it cannot tell."""
        cached = self._cache.get(tenant_id)
        return cached is not None and cached[0] is not None and cached[0].isdisjoint(addresses)

    def none_of(self, tenant_id: str, addresses: Iterable[str]) -> bool:
        """True when none of ``addresses`` (lower-cased) has a row, reading the set if stale."""
        found = self._addresses(tenant_id)
        return found is not None and found.isdisjoint(addresses)

    def drop(self, tenant_id: str) -> None:
        self._cache.drop(tenant_id)

    def _addresses(self, tenant_id: str) -> frozenset[str] | None:
        cached = self._cache.get(tenant_id)
        if cached is not None:
            return cached[0]
        stamp = self._cache.stamp()
        with db.reader(self.engine) as conn:
            found = frozenset(conn.execute(self._query, {"b_tenant": tenant_id}).scalars())
        kept = found if len(found) <= MAX_ADDRESSES else None
        self._cache.put(tenant_id, (kept,), stamp)
        return kept
