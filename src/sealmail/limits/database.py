"""Rate-limit counters in the database, shared by every process on it.

One statement per hit: ``INSERT … ON CONFLICT (bucket) DO UPDATE SET hits = hits + 1
RETURNING hits`` is atomic on PostgreSQL and SQLite (3.35+), so two API processes counting
the same key never lose a hit and never need a lock of their own.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from sealmail.limits.service import PRUNE_EVERY_SECONDS, Verdict, window_of
from sealmail.limits.tables import rate_limits
from sealmail.store import db


class DatabaseLimiter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._pruned = time.time()

    def hit(self, key: str, limit: int, window: int) -> Verdict:
        now = time.time()
        bucket, ends, reset = window_of(key, window, now)
        upsert = (
            self._insert(rate_limits)
            .values(bucket=bucket, hits=1, expires_at=ends)
            .on_conflict_do_update(index_elements=["bucket"], set_={"hits": rate_limits.c.hits + 1})
            .returning(rate_limits.c.hits)
        )
        with self.engine.begin() as conn:
            count = int(conn.execute(upsert).scalar_one())
            if now - self._pruned >= PRUNE_EVERY_SECONDS:
                self._pruned = now
                conn.execute(sa.delete(rate_limits).where(rate_limits.c.expires_at <= now))
        return Verdict(limit, count, window, reset)

    def peek(self, key: str, limit: int, window: int) -> Verdict:
        bucket, _, reset = window_of(key, window, time.time())
        with db.reader(self.engine) as conn:
            count = conn.execute(
                sa.select(rate_limits.c.hits).where(rate_limits.c.bucket == bucket)
            ).scalar_one_or_none()
        return Verdict(limit, int(count or 0), window, reset)
