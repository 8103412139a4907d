"""PostgreSQL's connection pool: last in, first out, and a ping only for a connection that has
been idle (``db.PING_IDLE_SECONDS``), which replaces one the server has dropped meanwhile."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from tests.support.waiting import wait_until

from sealmail.store import db


@pytest.fixture
def pg_engine(pg_database: str | None) -> Iterator[sa.Engine]:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable; set SEALMAIL_TEST_POSTGRES_URL")
    engine = db.create_engine(pg_database, pool_size=2, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pool's pings (the dialect's own ``do_ping`` still runs)."""
    seen: list[int] = []
    real = pg_engine.dialect.do_ping

    def counted(dbapi_conn: object) -> bool:
        seen.append(1)
        return real(dbapi_conn)  # type: ignore[arg-type]

    monkeypatch.setattr(pg_engine.dialect, "do_ping", counted)
    return seen


def _backend(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_a_connection_in_use_a_moment_ago_is_not_pinged(pg_engine: sa.Engine, pings: list[int]) -> None:
    for _ in range(20):
        with pg_engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1")
    assert pings == []


def test_an_idle_connection_is_pinged(
    pg_engine: sa.Engine, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_engine.connect() as conn:
        _backend(conn)
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    with pg_engine.connect() as conn:
        _backend(conn)
    assert pings == [1]


def test_the_last_connection_given_back_is_taken_next(pg_engine: sa.Engine) -> None:
    with pg_engine.connect() as first, pg_engine.connect() as second:
        pids = (_backend(first), _backend(second))
        first.close()  # given back first, then ``second`` on leaving the block
    for _ in range(5):
        with pg_engine.connect() as conn:
            assert _backend(conn) == pids[1]


def test_a_connection_the_server_dropped_while_idle_is_replaced(
    pg_engine: sa.Engine, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_engine.connect() as conn:
        dropped = _backend(conn)
    admin = db.create_engine(pg_database, pool_size=1, max_overflow=0)
    try:
        with admin.begin() as conn:
            assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({dropped})").scalar_one()

        def gone() -> bool:
            with admin.connect() as conn:
                alive = conn.exec_driver_sql(f"SELECT 1 FROM pg_stat_activity WHERE pid = {dropped}")
                return alive.first() is None

        wait_until(gone, timeout=10)
    finally:
        admin.dispose()
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    with pg_engine.connect() as conn:
        # Without the ping this statement would fail on the dead connection.
        assert _backend(conn) != dropped
