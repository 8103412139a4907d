"""One conformance test for both rate-limit counter stores: in process and in the database."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from tests.support.waiting import wait_until

from sealmail.limits.database import DatabaseLimiter
from sealmail.limits.service import Limiter, MemoryLimiter
from sealmail.store import db


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
