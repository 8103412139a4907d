"""Rate-limit counters in the database, shared by every process on it.

One statement per claim: ``INSERT … ON CONFLICT (bucket) DO UPDATE SET hits = hits + :n
RETURNING hits`` is atomic on PostgreSQL and SQLite (3.35+), so two API processes counting
the same key never lose a hit and never need a lock of their own.  A claim is one hit, or a
block of hits reserved ahead when the limit is large (``limits.leases``).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from sealmail.limits.leases import Leases
from sealmail.limits.service import PRUNE_EVERY_SECONDS, Verdict, window_of
from sealmail.limits.tables import rate_limits
from sealmail.store import db


class DatabaseLimiter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        # Built once: constructing the statement cost more than running it.
        self._claim = (
            insert(rate_limits)
            .values(bucket=sa.bindparam("bucket"), hits=sa.bindparam("n"), expires_at=sa.bindparam("ends"))
            .on_conflict_do_update(
                index_elements=["bucket"], set_={"hits": rate_limits.c.hits + sa.bindparam("n")}
            )
            .returning(rate_limits.c.hits)
        )
        self._leases = Leases()
        self._pruned = time.time()

    def cached_hit(self, key: str, limit: int, window: int) -> Verdict | None:
        now = time.time()
        bucket, _, reset = window_of(key, window, now)
        count = self._leases.take(bucket, limit)
        return None if count is None else Verdict(limit, count, window, reset)

    def hit(self, key: str, limit: int, window: int) -> Verdict:
        cached = self.cached_hit(key, limit, window)
        if cached is not None:
            return cached
        now = time.time()
        bucket, ends, reset = window_of(key, window, now)
        block = self._leases.next_block(bucket, limit)
        with self.engine.begin() as conn:
            total = int(conn.execute(self._claim, {"bucket": bucket, "n": block, "ends": ends}).scalar_one())
            if now - self._pruned >= PRUNE_EVERY_SECONDS:
                self._pruned = now
                conn.execute(sa.delete(rate_limits).where(rate_limits.c.expires_at <= now))
                self._leases.prune(now)
        return Verdict(limit, self._leases.claimed(bucket, ends, total, block), window, reset)

    def peek(self, key: str, limit: int, window: int) -> Verdict:
        """Where ``key`` stands in the shared count (hits reserved ahead included)."""
        bucket, _, reset = window_of(key, window, time.time())
        with db.reader(self.engine) as conn:
            count = conn.execute(
                sa.select(rate_limits.c.hits).where(rate_limits.c.bucket == bucket)
            ).scalar_one_or_none()
        return Verdict(limit, int(count or 0), window, reset)
