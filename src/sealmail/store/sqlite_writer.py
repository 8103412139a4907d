"""One SQLite writer at a time, handed over without SQLite's busy sleeps.

SQLite runs one write transaction at a time; a second ``BEGIN IMMEDIATE`` gets SQLITE_BUSY and
the busy handler sleeps 1, 2, 5, 10 … ms before it tries again (``sqliteDefaultBusyCallback``),
however soon the lock is freed.  With the SMTP gateway's group commit in one process and the
worker's claims and flushes in another, those sleeps were idle time on the delivery path
(strace on the benchmark's worker: hundreds of 1–2 ms ``usleep`` calls a second under
``sqlite3BtreeBeginTrans``, while both cores had time to spare).

So writers queue on a lock of their own before ``BEGIN IMMEDIATE``: the threads of a process on
a ``threading.Lock`` (woken as soon as it is released), processes on ``flock`` of a
``<database>-writer`` file beside the database, retried every 20–200 µs.  SQLite's own lock is
then free when ``BEGIN IMMEDIATE`` runs.  Readers (``DEFERRED``) take neither.  A writer that
does not know this lock (another program, an older version during an upgrade) still meets
SQLite's busy handler, which stays as the safety net; a wait longer than the busy timeout ends
in SQLite's own "database is locked" error.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from typing import Any, Final

__all__ = ["WriterConnection", "WriterLock", "writer_lock_for"]

# Between two tries of another process's ``flock``: short enough that a hand-over costs a
# fraction of a millisecond, long enough that a waiter costs next to nothing.
_FIRST_PAUSE: Final = 20e-6
_LONGEST_PAUSE: Final = 200e-6

_LOCKS: weakref.WeakValueDictionary[str, WriterLock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


class WriterLock:
    """The write lock of one database file in this process (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fd = fd
        # Closed with the last connection that refers to this lock.
        weakref.finalize(self, os.close, fd)

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            self._lock_file(deadline)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _lock_file(self, deadline: float) -> None:
        pause = _FIRST_PAUSE
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)


def writer_lock_for(database: str | None) -> WriterLock | None:
    """The process's lock for a database file; ``None`` for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    path = os.path.realpath(database)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(path)
        if lock is None:
            lock = WriterLock(path)
            _LOCKS[path] = lock
        return lock


class WriterConnection(sqlite3.Connection):
    """A sqlite3 connection that gives the writer lock back when its transaction ends.

    ``commit``, ``rollback`` and ``close`` are where SQLAlchemy (and the pool, on check-in or
    invalidation) ends a transaction; the lock is released after SQLite has let go of its own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer_lock: WriterLock | None = None
        self._holding = False
        self._timeout = float(kwargs.get("timeout", 5.0))

    def begin_write(self, mode: str) -> None:
        """``BEGIN <mode>`` holding the writer lock (no lock without one, as in memory)."""
        lock = self.writer_lock
        if lock is None or self._holding:
            self.execute(f"BEGIN {mode}")
            return
        lock.acquire(self._timeout)
        self._holding = True
        try:
            self.execute(f"BEGIN {mode}")
        except BaseException:
            self._let_go()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        if self._holding and (self.writer_lock is not None):
            self._holding = False
            with contextlib.suppress(OSError):
                self.writer_lock.release()
