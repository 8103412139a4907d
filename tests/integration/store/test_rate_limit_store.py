"""One conformance test for both rate-limit counter stores: in process and in the database."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from tests.support.waiting import wait_until

from sealmail.limits.database import DatabaseLimiter
from sealmail.limits.leases import LEASE_SHARE, MAX_BLOCK, block_size
from sealmail.limits.service import Limiter, MemoryLimiter, Verdict
from sealmail.store import db

T = TypeVar("T")


@pytest.fixture(params=["memory", "database"])
def limiter(request: pytest.FixtureRequest, db_url: str) -> Iterator[Limiter]:
    if request.param == "memory":
        yield MemoryLimiter()
        return
    engine = db.create_engine(db_url)
    yield DatabaseLimiter(engine)
    engine.dispose()


def test_counts_hits_per_key_and_refuses_past_the_limit(limiter: Limiter) -> None:
    window = 3600
    for _ in range(2):
        index = math.floor(time.time() / window)
        verdicts = [limiter.hit("k:one", 2, window) for _ in range(3)]
        if math.floor(time.time() / window) == index:
            break
    assert [v.count for v in verdicts] == [1, 2, 3]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[1].remaining == 0
    assert 1 <= verdicts[2].reset <= window
    assert verdicts[2].headers("p")["Retry-After"] == str(verdicts[2].reset)
    assert "Retry-After" not in verdicts[0].headers("p")
    # Another key has its own count, and a peek counts nothing.
    assert limiter.hit("k:two", 2, window).count == 1
    assert limiter.peek("k:two", 2, window).count == 1
    assert limiter.peek("k:three", 2, window).count == 0


def test_a_new_window_starts_a_new_count(limiter: Limiter) -> None:
    limiter.hit("k:short", 1, 1)
    first = math.floor(time.time())
    wait_until(lambda: math.floor(time.time()) != first, 3, "the one-second window did not end")
    assert limiter.hit("k:short", 1, 1).count == 1


def _in_one_window(step: Callable[[], T], window: int) -> T:
    for _ in range(2):
        index = math.floor(time.time() / window)
        result = step()
        if math.floor(time.time() / window) == index:
            break
    return result


def test_a_large_limit_reserves_blocks_and_counts_every_hit_in_order(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        limiter = DatabaseLimiter(engine)
        window = 3600
        verdicts = _in_one_window(lambda: [limiter.hit("k:big", 100_000, window) for _ in range(100)], window)
        assert [v.count for v in verdicts] == list(range(1, 101))
        assert all(v.allowed for v in verdicts)
        # Reserved ahead, not yet used: the shared row is ahead by less than a block.
        assert 100 <= limiter.peek("k:big", 100_000, window).count < 100 + MAX_BLOCK
        assert limiter.cached_hit("k:big", 100_000, window) is not None
    finally:
        engine.dispose()


def test_two_processes_reserving_blocks_never_allow_more_than_the_limit(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        one, two = DatabaseLimiter(engine), DatabaseLimiter(engine)
        window, limit = 3600, 20 * LEASE_SHARE

        def alternate() -> list[Verdict]:
            return [lim.hit("k:shared", limit, window) for _ in range(limit) for lim in (one, two)]

        verdicts = _in_one_window(alternate, window)
        allowed = [v.count for v in verdicts if v.allowed]
        assert len(allowed) == len(set(allowed)) <= limit
        # Slots reserved by one process and unused are lost to the other: at most a block each.
        assert len(allowed) > limit - 2 * block_size(limit, 0)
        # A spent window answers from memory: no statement, still refused.
        refused = one.cached_hit("k:shared", limit, window)
        assert refused is not None
        assert not refused.allowed
    finally:
        engine.dispose()
