"""Waking an idle worker when mail is queued, rather than at its next poll.

An idle worker polls ever more slowly (``pacing.idle_delay``: up to 8 × ``worker_poll_seconds``,
1.6 s by default) so that idle workers cost the database little; without a signal, mail queued
after a quiet spell waited that long for its first claim (the benchmark's worker sat idle for
over a second while the gateway had already accepted hundreds of messages).  Postfix's cleanup
daemon likewise wakes its queue manager through a trigger rather than leaving it to poll.

* PostgreSQL: a statement trigger on ``recipients`` sends ``NOTIFY sealmail_queue`` at the
  commit of every transaction that queues mail (migration ``0030_queue_bell``), whichever
  process or path queued it; the worker ``LISTEN``s on a connection of its own.
* SQLite (one host): the worker reads the table's largest rowid every ``SQLITE_EVERY`` seconds
  while idle (a read of the B-tree's last page, ~10 µs); a new recipient row moves it.

Either way the poll stays as the fallback (a retry falling due, a lost listener connection),
so the bell only ever shortens a wait.  ``mark`` is read before each claim, so a recipient
queued between the claim's read and the wait still rings.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Final, Protocol

import psycopg
import structlog
from sqlalchemy.engine import Engine

__all__ = ["ListeningBell", "QueueBell", "RowidBell", "bell_for"]

log = structlog.get_logger("sealmail.worker")

CHANNEL: Final = "sealmail_queue"
SQLITE_EVERY: Final = 0.02


class QueueBell(Protocol):
    def mark(self) -> object:
        """A token of the queue's state, taken before a claim."""

    async def wait(self, mark: object, longest: float) -> None:
        """Return when mail was queued since ``mark``, or after ``longest`` seconds."""

    async def close(self) -> None: ...


class RowidBell:
    """SQLite: the largest rowid of ``recipients``, read on a read-only connection of its own."""

    def __init__(self, path: str, every: float = SQLITE_EVERY) -> None:
        self._path = path
        # Opened by the first mark: a worker that is built but never run holds none.
        self._conn: sqlite3.Connection | None = None
        self._every = every

    def mark(self) -> object:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
            return self._conn.execute("SELECT max(rowid) FROM recipients").fetchone()[0]
        except sqlite3.Error:
            return None  # e.g. busy during a checkpoint: compared as "changed", one extra claim

    async def wait(self, mark: object, longest: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + longest
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._every, left))
            if self.mark() != mark:
                return

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class ListeningBell:
    """PostgreSQL: ``LISTEN sealmail_queue`` on a connection of its own, opened on first use
    and again after it fails (meanwhile the wait is a plain sleep)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[object] | None = None

    def mark(self) -> object:
        return None

    async def wait(self, mark: object, longest: float) -> None:
        conn = self._conn or await self._connect()
        if conn is None:
            await asyncio.sleep(longest)
            return
        try:
            async for _ in conn.notifies(timeout=longest, stop_after=1):
                break
            # Notifications that queued up while this worker was busy say nothing new:
            # drop them, or each would wake the next idle wait for an empty claim.
            async for _ in conn.notifies(timeout=0):
                pass
        except psycopg.Error as exc:
            log.warning("worker.bell_lost", error=type(exc).__name__)
            await self.close()

    async def _connect(self) -> psycopg.AsyncConnection[object] | None:
        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=5)
            await conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("worker.bell_unavailable", error=type(exc).__name__)
            return None
        self._conn = conn
        return conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()


def bell_for(engine: Engine) -> QueueBell | None:
    """The bell that fits the engine; None for an in-memory SQLite database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return ListeningBell(url.set(drivername="postgresql").render_as_string(hide_password=False))
    database = url.database
    if not database or database == ":memory:":
        return None
    return RowidBell(database)
