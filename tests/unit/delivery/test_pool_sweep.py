"""The idle sweep before every delivery: stale connections closed, its walk kept short."""

from __future__ import annotations

import types
from typing import Any

import pytest

from sealmail.delivery import pool
from sealmail.delivery.pool import SWEEP_EVERY_SECONDS, ConnectionPool, PoolOptions
from sealmail.delivery.routes import Where
from sealmail.delivery.transaction import PoolKey, Session
from sealmail.domain.tls_policy import TlsPolicy


class _Smtp:
    """What ``abort`` touches of an aiosmtplib client."""

    transport = None
    is_connected = True

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _key(host: str) -> PoolKey:
    return (host, "192.0.2.1", 25, TlsPolicy.REQUIRE_VERIFIED, "")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(pool, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_sweep_closes_stale_connections_and_forgets_destinations_left_empty(clock: list[float]) -> None:
    connections = ConnectionPool(PoolOptions("out.sealmail.test", idle_timeout=30.0))
    stale, fresh = _Smtp(), _Smtp()
    smtp: Any
    for host, smtp in (("mx1.example.org", stale), ("mx2.example.org", fresh)):
        connections.release(Session(smtp, _key(host), Where(host)))
    clock[0] += 20.0
    connections.sweep_idle()  # nothing is 30 s old yet
    assert not stale.closed and not fresh.closed
    # Only mx2 is used again; mx1's connection goes stale.
    [reused] = connections._idle[_key("mx2.example.org")]
    reused.last_used = clock[0]
    clock[0] += 15.0

    connections.sweep_idle()

    assert stale.closed and not fresh.closed
    assert set(connections._idle) == {_key("mx2.example.org")}


def test_sweep_walks_the_pool_at_most_once_a_second(clock: list[float]) -> None:
    connections = ConnectionPool(PoolOptions("out.sealmail.test", idle_timeout=30.0))
    connections.sweep_idle()
    smtp: Any = _Smtp()
    connections.release(Session(smtp, _key("mx1.example.org"), Where("mx1.example.org")))
    [session] = connections._idle[_key("mx1.example.org")]
    session.last_used -= 60.0  # stale already

    clock[0] += SWEEP_EVERY_SECONDS / 2
    connections.sweep_idle()
    assert not smtp.closed  # the last walk was half a second ago

    clock[0] += SWEEP_EVERY_SECONDS
    connections.sweep_idle()
    assert smtp.closed
