"""Waking an idle worker when mail is queued, rather than at its next poll.

An idle worker polls ever more slowly (``pacing.idle_delay``: up to 8 × ``worker_poll_seconds``,
1.6 s by default) so that idle workers cost the database little; without a signal, mail queued
after a quiet spell waited that long for its first claim (the benchmark's worker sat idle for
over a second while the gateway had already accepted hundreds of messages).  Postfix's cleanup
daemon likewise wakes its queue manager through a trigger rather than leaving it to poll.

* PostgreSQL: a statement trigger on ``recipients`` sends ``NOTIFY sealmail_queue`` at the
  commit of every transaction that queues mail (migration ``0030_queue_bell``), whichever
  process or path queued it; the worker ``LISTEN``s on a connection of its own.  Only one
  idle worker at a time answers it: the one holding the *turn*, a session advisory lock
  (:data:`TURN_KEY`).  When every idle worker answered, each commit woke them all: one claimed
  the few messages the commit held and the others claimed nothing, or each got one, delivered
  it alone and flushed it alone — with 8 workers beside a streaming intake, Sealmail's CPU
  per message tripled and its rate halved (issue 18).  Now the others wait for the turn
  (``pg_advisory_lock`` under a ``lock_timeout``, which doubles as their poll), and the
  holder gives it up only when it is full (``step_aside``), so one worker takes the mail
  while it can and more join as the load needs them.  A worker that dies or loses its
  connection frees the turn with its session.
* SQLite (one host): the worker reads the table's largest rowid every ``SQLITE_EVERY`` seconds
  while idle (a read of the B-tree's last page, ~10 µs); a new recipient row moves it.  The
  turn is an exclusive ``flock`` on a file beside the database (``<database>-bell``), which
  the others try at the same pace; a process that ends releases it.

Either way the poll stays as the fallback (a retry falling due, a lost listener connection),
so the bell only ever shortens a wait.  ``mark`` is read before each claim, so a recipient
queued between the claim's read and the wait still rings.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from typing import Final, Protocol

import psycopg
import structlog
from sqlalchemy.engine import Engine

__all__ = ["STANDBY_PATIENCE", "ListeningBell", "QueueBell", "RowidBell", "bell_for", "wait_bound"]

log = structlog.get_logger("sealmail.worker")

CHANNEL: Final = "sealmail_queue"
SQLITE_EVERY: Final = 0.02
# The advisory lock naming "the idle worker that answers the bell" (a database's queue has
# one).  Above 2**32: no one-argument lock on an int4 (``hashtext`` of a name, as domain
# verification takes) can ever be the same lock.
TURN_KEY: Final = 0x5EA1_B311_0000_0001
# How long a worker waits for the turn before it claims anyway, as a poll would (at least;
# longer when its own wait is longer), and how long mail must have been due for that claim to
# take it (``STANDBY_PATIENCE``): the holder claims new mail within a flush (≤ 0.25 s), so
# what has waited longer is what it cannot keep up with, or a retry falling due.  A waiting
# worker that took whatever was due after each short poll took the holder's mail a few
# messages at a time, on cold caches and connections of its own.
STANDBY_SECONDS: Final = 1.0
STANDBY_PATIENCE: Final = 1.0


def wait_bound(longest: float) -> float:
    """The most a bell's ``wait(mark, longest)`` lasts (a safety net for its caller)."""
    return max(longest, STANDBY_SECONDS) + 1.0


class QueueBell(Protocol):
    def mark(self) -> object:
        """A token of the queue's state, taken before a claim."""

    async def wait(self, mark: object, longest: float) -> bool:
        """Return when mail was queued since ``mark``, or after ``longest`` seconds (a worker
        waiting for the turn: after ``STANDBY_SECONDS`` at least).  True: this worker answers
        the bell and claims whatever is due; False: it is waiting for the turn, and claims only
        what has been due for ``STANDBY_PATIENCE``."""

    async def step_aside(self) -> None:
        """This worker is full: another idle worker answers the bell meanwhile."""

    async def close(self) -> None: ...


class RowidBell:
    """SQLite: the largest rowid of ``recipients``, read on a read-only connection of its own;
    only the holder of the turn (a ``flock`` on ``<database>-bell``) reads it."""

    def __init__(self, path: str, every: float = SQLITE_EVERY) -> None:
        self._path = path
        # Opened by the first mark: a worker that is built but never run holds none.
        self._conn: sqlite3.Connection | None = None
        self._every = every
        self._turn_fd: int | None = None  # the turn file, open for this worker's lock attempts
        self._holding = False
        self.waiting_for_turn = False

    def mark(self) -> object:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
            return self._conn.execute("SELECT max(rowid) FROM recipients").fetchone()[0]
        except sqlite3.Error:
            return None  # e.g. busy during a checkpoint: compared as "changed", one extra claim

    async def wait(self, mark: object, longest: float) -> bool:
        loop = asyncio.get_running_loop()
        if not self._holding:
            turn = await self._take_turn(longest)
            if turn is not None:
                return turn
        deadline = loop.time() + longest
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._every, left))
            if self.mark() != mark:
                break
        return True

    async def _take_turn(self, longest: float) -> bool | None:
        """As ``ListeningBell._take_turn`` (here nothing is missed meanwhile: ``mark`` was read
        before the claim); the lock is tried every ``SQLITE_EVERY`` seconds."""
        if self._try_lock():
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(longest, STANDBY_SECONDS)
        self.waiting_for_turn = True
        try:
            while (left := deadline - loop.time()) > 0:
                await asyncio.sleep(min(self._every, left))
                if self._try_lock():
                    return True
        finally:
            self.waiting_for_turn = False
        return False

    def _try_lock(self) -> bool:
        try:
            if self._turn_fd is None:
                self._turn_fd = os.open(f"{self._path}-bell", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._turn_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            # No turn file (a read-only directory): this worker answers the bell, as before turns.
            log.warning("worker.bell_turn_unavailable", error=type(exc).__name__)
        self._holding = True
        return True

    async def step_aside(self) -> None:
        if self._holding and self._turn_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._turn_fd, fcntl.LOCK_UN)
        self._holding = False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        fd, self._turn_fd = self._turn_fd, None
        self._holding = False
        if fd is not None:
            os.close(fd)  # releases the turn


class ListeningBell:
    """PostgreSQL: ``LISTEN sealmail_queue`` on a connection of its own, opened on first use
    and again after it fails (meanwhile the wait is a plain sleep).  Only the holder of the
    turn (``TURN_KEY``) listens: a waiting worker would gather a notification per commit it
    never reads (psycopg keeps them until ``notifies`` runs), and PostgreSQL wakes every
    listening backend at each commit."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[object] | None = None
        self._holding = False
        self.waiting_for_turn = False

    def mark(self) -> object:
        return None

    async def wait(self, mark: object, longest: float) -> bool:
        conn = self._conn or await self._connect()
        if conn is None:
            await asyncio.sleep(longest)
            return True  # no turn to wait for: every worker answers, as a poll
        try:
            if not self._holding:
                turn = await self._take_turn(conn, longest)
                if turn is not None:
                    return turn
            async for _ in conn.notifies(timeout=longest, stop_after=1):
                break
            await _drop_pending(conn)
        except psycopg.Error as exc:
            log.warning("worker.bell_lost", error=type(exc).__name__)
            await self.close()
        return True

    async def _take_turn(self, conn: psycopg.AsyncConnection[object], longest: float) -> bool | None:
        """None: the turn was free, and this worker holds it and listens now (what was queued
        between its claim and its ``LISTEN`` waits for its poll, as at its first wait before
        turns).  True: the turn came free while it waited (its holder is full, so mail is
        likely waiting): claim now.  False: it did not come free: claim what has waited long."""
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (TURN_KEY,))
        taken: bool | None = None
        if await cur.fetchone() != (True,):
            wait_ms = int(max(longest, STANDBY_SECONDS) * 1000)
            await conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{wait_ms}ms",))
            self.waiting_for_turn = True
            try:
                await conn.execute("SELECT pg_advisory_lock(%s)", (TURN_KEY,))
            except psycopg.errors.LockNotAvailable:
                return False
            finally:
                self.waiting_for_turn = False
            taken = True
        self._holding = True
        await conn.execute(f"LISTEN {CHANNEL}")
        return taken

    async def step_aside(self) -> None:
        conn = self._conn
        if not self._holding or conn is None:
            return
        self._holding = False
        try:
            await conn.execute(f"UNLISTEN {CHANNEL}")
            await conn.execute("SELECT pg_advisory_unlock(%s)", (TURN_KEY,))
            await _drop_pending(conn)
        except psycopg.Error as exc:
            # Closing the session frees the turn as surely.
            log.warning("worker.bell_lost", error=type(exc).__name__)
            await self.close()

    async def _connect(self) -> psycopg.AsyncConnection[object] | None:
        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            log.warning("worker.bell_unavailable", error=type(exc).__name__)
            return None
        self._conn = conn
        self._holding = False
        return conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._holding = False
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()


async def _drop_pending(conn: psycopg.AsyncConnection[object]) -> None:
    """Notifications that queued up while this worker was busy say nothing new: dropped, or
    each would wake the next idle wait for an empty claim."""
    async for _ in conn.notifies(timeout=0):
        pass


def bell_for(engine: Engine) -> QueueBell | None:
    """The bell that fits the engine; None for an in-memory SQLite database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return ListeningBell(url.set(drivername="postgresql").render_as_string(hide_password=False))
    database = url.database
    if not database or database == ":memory:":
        return None
    return RowidBell(database)
