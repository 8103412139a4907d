"""``TtlCache``: freshness bound, in-process invalidation, reads racing an invalidation."""

from __future__ import annotations

from sealmail.store.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_fresh_for_its_seconds_counted_from_before_the_read() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(5.0, clock=clock)
    stamp = cache.stamp()
    clock.now += 1.0  # the read took a second
    cache.put("t", 1, stamp)
    clock.now += 3.9
    assert cache.get("t") == 1
    clock.now += 0.1
    assert cache.get("t") is None


def test_drop_forgets_at_once_and_voids_a_read_in_flight() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(5.0, clock=clock)
    cache.put("t", "old", cache.stamp())
    cache.drop("t")
    assert cache.get("t") is None
    stamp = cache.stamp()  # a read begins ...
    cache.drop("t")  # ... a change lands in this process ...
    cache.put("t", "maybe old", stamp)  # ... and what the read saw is not kept
    assert cache.get("t") is None
    cache.put("t", "new", cache.stamp())
    assert cache.get("t") == "new"


def test_memory_is_bounded() -> None:
    clock = Clock()
    cache: TtlCache[int, int] = TtlCache(5.0, max_entries=3, clock=clock)
    for i in range(3):
        cache.put(i, i, cache.stamp())
    clock.now += 10  # all expired: they go first
    cache.put(3, 3, cache.stamp())
    assert [cache.get(i) for i in range(4)] == [None, None, None, 3]
    cache.put(4, 4, cache.stamp())
    cache.put(5, 5, cache.stamp())
    cache.put(6, 6, cache.stamp())  # full of fresh entries: start over rather than grow
    assert cache.get(6) == 6
    assert len(cache._entries) <= 3
