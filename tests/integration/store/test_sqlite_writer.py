"""SQLite writers queue on Sealmail's own lock (``store/sqlite_writer.py``): across threads and
processes one write transaction at a time, readers never wait, and the lock is given back
however the transaction ends."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from sealmail.store import db
from sealmail.store.sqlite_writer import WriterConnection, writer_lock_for


def _connection(path: Path, timeout: float = 0.3) -> WriterConnection:
    conn = sqlite3.connect(path, timeout=timeout, factory=WriterConnection, check_same_thread=False)
    conn.isolation_level = None
    conn.execute("PRAGMA journal_mode=WAL")
    conn.writer_lock = writer_lock_for(str(path))
    return conn


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    engine = db.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    engine.dispose()
    return path


def test_a_second_writer_in_the_process_waits_then_fails_with_sqlites_error(database: Path) -> None:
    first, second = _connection(database), _connection(database)
    first.begin_write("IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        second.begin_write("IMMEDIATE")
    assert time.monotonic() - started >= 0.25  # it waited its timeout, not a first busy reply
    first.execute("INSERT INTO t VALUES (1)")
    first.commit()
    second.begin_write("IMMEDIATE")  # free again: commit gave the lock back
    second.execute("INSERT INTO t VALUES (2)")
    second.rollback()
    first.begin_write("IMMEDIATE")  # and so did rollback
    first.close()
    second.begin_write("IMMEDIATE")  # and close, mid-transaction
    second.rollback()
    assert [r[0] for r in second.execute("SELECT x FROM t")] == [1]
    second.close()


def test_a_waiting_writer_gets_the_lock_when_it_is_released(database: Path) -> None:
    first, second = _connection(database), _connection(database, timeout=10)
    first.begin_write("IMMEDIATE")
    got = threading.Event()

    def take() -> None:
        second.begin_write("IMMEDIATE")
        got.set()

    thread = threading.Thread(target=take)
    thread.start()
    assert not got.is_set()  # the first still holds it
    first.commit()
    thread.join(timeout=10)
    assert got.is_set()
    second.rollback()
    first.close()
    second.close()


def test_readers_do_not_take_the_writer_lock(database: Path) -> None:
    engine = db.create_engine(f"sqlite:///{database}")
    writer = _connection(database)
    writer.begin_write("IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (7)")
    with db.reader(engine) as conn:  # DEFERRED: reads the last committed state, no wait
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 0
    writer.commit()
    with db.reader(engine) as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
    writer.close()
    engine.dispose()


_HOLDER = textwrap.dedent(
    """
    import sys
    from sealmail.store import db
    engine = db.create_engine("sqlite:///" + sys.argv[1])
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (3)")
        print("holding", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


def test_another_process_holding_the_lock_makes_writers_wait(database: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        mine = _connection(database)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            mine.begin_write("IMMEDIATE")
        engine = db.create_engine(f"sqlite:///{database}")
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        mine.begin_write("IMMEDIATE")
        assert [r[0] for r in mine.execute("SELECT x FROM t")] == [3]
        mine.rollback()
        mine.close()
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (4)")
        engine.dispose()
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_lock_wait_through_the_engine_raises_sqlalchemys_error(database: Path) -> None:
    holder = _connection(database)
    holder.begin_write("IMMEDIATE")
    engine = sa.create_engine(
        f"sqlite:///{database}",
        connect_args={"check_same_thread": False, "timeout": 0.2, "factory": WriterConnection},
    )
    db._configure_sqlite(engine, "FULL")
    with pytest.raises(sa_exc.OperationalError, match="database is locked"), engine.begin():
        pass
    holder.rollback()
    with engine.begin() as conn:  # the failed BEGIN left nothing held
        conn.exec_driver_sql("INSERT INTO t VALUES (5)")
    engine.dispose()
    holder.close()


def test_the_lock_goes_with_the_last_connection(database: Path) -> None:
    conn = _connection(database)
    lock = weakref.ref(conn.writer_lock)  # type: ignore[arg-type]
    conn.close()
    del conn
    gc.collect()
    assert lock() is None  # and its finalizer closed the lock file


def test_an_in_memory_database_has_no_lock() -> None:
    assert writer_lock_for(":memory:") is None
    assert writer_lock_for(None) is None
