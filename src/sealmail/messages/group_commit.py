"""Group commit: concurrent ``accept`` calls share one transaction and one fsync.

``write`` is that transaction: suppressions checked, then message, recipient, tag and
event rows, idempotency keys and audit entries for the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.domain.statuses import MessageStatus, RecipientStatus
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import idempotency_keys, message_tags, messages, recipients
from sealmail.suppressions import service as suppressions
from sealmail.suppressions.known import known

# Built once (an accepted batch runs each of them; building a statement per call cost
# as much CPU as executing it).  The row inserts go straight to the driver (``db.RowInsert``):
# on PostgreSQL SQLAlchemy's multi-row INSERT of a batch's messages cost twice the driver's
# ``executemany``.
_INSERT_MESSAGES = db.RowInsert(messages)
_INSERT_RECIPIENTS = db.RowInsert(recipients)
_INSERT_TAGS = db.RowInsert(message_tags)
_INSERT_IDEMPOTENCY = sa.insert(idempotency_keys)
_EXPIRED_IDEMPOTENCY = sa.delete(idempotency_keys).where(
    idempotency_keys.c.tenant_id == sa.bindparam("b_tenant"),
    idempotency_keys.c.key == sa.bindparam("b_key"),
    idempotency_keys.c.created_at < sa.bindparam("b_before"),
)

# How long a batch's leader may wait for callers already on their way (``expect``): the
# most a message's acknowledgement is delayed to share a commit.
COMPANY_SECONDS = 0.002


class GroupCommit:
    """Group commit: concurrent ``accept`` calls share one transaction and one fsync.

    Each caller hands in its prepared rows and blocks until they are committed.  The first
    caller into an empty queue leads: it waits for the previous batch's commit (the write
    lock), takes everything queued meanwhile and commits it in one transaction, then wakes
    the others.  Under no load a batch is one message and nothing waits; under load the
    batch grows with the time a commit takes, so one writer — SQLite's single write lock,
    PostgreSQL's WAL flush — serves many requests.  Nobody returns before the commit.

    Callers announce themselves before their own work (``expect``: screening, sealing),
    and a leader that knows some are on their way waits up to ``company`` seconds for them
    to queue: BEGIN, each statement and COMMIT cost the same for one message as for five,
    and with a few client connections a batch was otherwise 1.6-1.9 messages.  The wait
    ends as soon as every announced caller has queued or given up.

    If a batch fails, its items are written again one per transaction, so one bad
    submission (an Idempotency-Key race, say) fails only its own request.

    Callers on an event loop never block on it: the intake lane (``messages.lane``)
    prepares their messages on its own thread and leads their batch (``lead``); each such
    item carries its loop and a future, completed once the batch is durable — one
    ``call_soon_threadsafe`` per loop and batch.
    """

    def __init__(self, write: Callable[[list[Pending]], None], company: float = COMPANY_SECONDS) -> None:
        self._write = write
        self.company = company
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[Pending] = []
        self._coming = 0  # callers inside ``expect`` that have not queued yet
        self._writer = threading.Lock()

    @contextmanager
    def expect(self) -> Iterator[Arrival]:
        """Announce a caller on its way; yields its way into the queue (``Arrival``).

        A leader may wait (``company``) for announced callers; one that leaves without
        submitting (refused, failed) stops counting when it leaves.
        """
        arrival = Arrival(self)
        arrival.announce()
        try:
            yield arrival
        finally:
            with self._lock:
                arrival.closed = True
                if arrival.counted and not arrival.queued:
                    self._coming -= 1
                    self._arrived.notify_all()

    def submit(self, item: Pending) -> None:
        self._submit(item, announced=False)

    def _queued(self, item: Pending, *, announced: bool) -> bool:
        """Queue ``item``; True when its caller leads (the queue was empty)."""
        with self._lock:
            self._queue.append(item)
            if announced:
                self._coming -= 1
                self._arrived.notify_all()
            return len(self._queue) == 1

    def lead(self, items: list[Pending]) -> None:
        """Queue ``items`` (each with its loop and future) and lead a batch holding them, for
        a thread that prepares event-loop callers' messages itself (``messages.lane``).

        Returns once they are committed or failed.  Another leader may have taken them into
        its batch meanwhile: this one then commits whatever is queued, or nothing.
        """
        with self._lock:
            self._queue.extend(items)
        self._lead_batch()

    def _lead_batch(self) -> None:
        with self._writer:
            with self._lock:
                self._await_company()
                batch, self._queue = self._queue, []
            if batch:
                self._commit(batch)

    def _submit(self, item: Pending, *, announced: bool) -> None:
        if self._queued(item, announced=announced):
            self._lead_batch()
        else:
            item.done.wait()
        if item.error is not None:
            raise item.error

    def _await_company(self) -> None:
        """With ``_lock`` held: wait, bounded, while announced callers are still on their way."""
        if self._coming <= 0 or self.company <= 0:
            return
        deadline = time.monotonic() + self.company
        while self._coming > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.wait(left)

    def _commit(self, batch: list[Pending]) -> None:
        try:
            self._write(batch)
        except Exception as exc:  # noqa: BLE001 — each caller re-raises its own error
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for item in batch:
                    try:
                        self._write([item])
                    except Exception as one:  # noqa: BLE001 — handed to its own caller, who raises it
                        item.error = one
        except BaseException:
            # Interrupted (KeyboardInterrupt, SystemExit): nobody may believe it committed.
            for item in batch:
                item.error = RuntimeError("the commit was interrupted; the message was not stored")
            raise
        finally:
            _settle(batch)


class Arrival:
    """An announced caller's way into the commit queue."""

    __slots__ = ("_commits", "closed", "counted", "queued")

    def __init__(self, commits: GroupCommit) -> None:
        self._commits = commits
        self.queued = False
        self.counted = False  # in the leader's ``_coming``
        self.closed = False  # ``expect`` has ended: too late to announce

    def announce(self) -> None:
        """Count this caller as on its way (any thread; once)."""
        with self._commits._lock:
            if not (self.counted or self.closed):
                self.counted = True
                self._commits._coming += 1

    def __call__(self, item: Pending) -> None:
        """Queue ``item`` and block until the transaction holding it committed."""
        self.queued = True
        self._commits._submit(item, announced=self.counted)


def _settle(batch: list[Pending]) -> None:
    """Wake every caller of a committed (or failed) batch: threads by their event, each
    event loop once for all of its callers."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Pending]] = {}
    for item in batch:
        if item.loop is None:
            item.done.set()
        else:
            by_loop.setdefault(item.loop, []).append(item)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:
            pass  # the loop closed: nobody is left to acknowledge


def _resolve(items: list[Pending]) -> None:
    """On the callers' loop: complete each future (one cancelled meanwhile is left alone)."""
    for item in items:
        future = item.future
        if future is None or future.done():
            continue
        if item.error is not None:
            future.set_exception(item.error)
        else:
            future.set_result(None)


@dataclass(slots=True)
class Pending:
    """The rows of one accepted message, ready to be written in a commit batch."""

    message: dict[str, Any]
    recipients: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    events: list[ev.NewEvent]
    audit: list[audit.Entry]
    idempotency: dict[str, Any] | None
    response: dict[str, Any] = field(default_factory=dict)
    bypass_suppressions: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    # A caller on an event loop awaits ``future`` on ``loop`` instead of ``done``.
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[None] | None = None


def reject_suppressed(conn: Connection, batch: list[Pending]) -> None:
    """Mark suppressed recipients ``rejected`` with a ``message.rejected`` event: at most one
    lookup per batch, none when no address is on the list (``suppressions.known``).

    Inside the commit's transaction, so an entry added a moment ago in this process is seen
    (one added by another process within ``known.SECONDS``).  Written to be
    run again on the same items (a failed batch is retried one item per transaction).
    """
    checked = [p for p in batch if not p.bypass_suppressions]
    found = known.lookup(conn, ((r["tenant_id"], r["address"]) for p in checked for r in p.recipients))
    for p in batch:
        base = (
            RecipientStatus.QUARANTINED if p.message["dlp_action"] == "quarantine" else RecipientStatus.QUEUED
        )
        accepted = [e for e in p.events if e.type_ is not ev.EventType.REJECTED]
        rejected: list[ev.NewEvent] = []
        for r in p.recipients:
            r["status"] = base
            r["last_reason"] = r["last_detail"] = None
            why = None
            if not p.bypass_suppressions:
                key = (r["tenant_id"], suppressions.normalize(r["address"]))
                why = suppressions.match(found.get(key), p.message["stream"])
            if why is None:
                continue
            r.update(
                status=RecipientStatus.REJECTED, last_reason="suppressed", last_detail=f"suppressed: {why}"
            )
            rejected.append(
                dataclasses.replace(
                    accepted[0],
                    type_=ev.EventType.REJECTED,
                    recipient_id=r["id"],
                    recipient=r["address"],
                    data={"reason": "suppressed", "suppression": str(why)},
                )
            )
        p.events = accepted + rejected
        p.message["event_seq"] = len(p.events)
        # A message every recipient of which is suppressed has nothing left to deliver.
        p.message["status"] = (
            MessageStatus.REJECTED if len(rejected) == len(p.recipients) else MessageStatus(base)
        )
        statuses = {r["id"]: r["status"] for r in p.recipients}
        for out in p.response.get("recipients", []):
            out["status"] = statuses.get(out["id"], out.get("status"))
        if p.response:
            p.response["status"] = p.message["status"]


class _Slot:
    """Where ``HeldConnection`` keeps its idle connection, and since when it is idle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: Connection | None = None
        self.since = 0.0

    def take(self) -> tuple[Connection | None, float]:
        with self.lock:
            conn, self.conn = self.conn, None
            return conn, self.since

    def put(self, conn: Connection) -> None:
        with self.lock:
            if self.conn is None:
                self.conn, self.since = conn, time.monotonic()
                return
        conn.close()

    def release(self, *_: object) -> None:
        conn, _since = self.take()
        if conn is not None:
            conn.close()


class HeldConnection:
    """The connection consecutive commit batches share.

    A checkout from SQLAlchemy's pool and the check-in after it (events, the reset) cost
    about as much CPU as a batch's inserts.  So the connection a batch committed on waits here
    for the next batch.  One that waited longer than ``REUSE_SECONDS`` (the pool's own
    ``db.PING_IDLE_SECONDS``) is not reused: the next batch gives it back to the pool, whose
    checkout pings a connection idle that long, so one broken while idle is not used
    unchecked.  It is out of the slot while in use (one leader writes at a time anyway), and
    given back after a failed batch, when the engine is disposed (``Services.close``) or when
    this object is collected.
    """

    REUSE_SECONDS = db.PING_IDLE_SECONDS

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        slot = self._slot = _Slot()
        sa.event.listen(engine, "engine_disposed", slot.release)
        weakref.finalize(self, _forget, engine, slot)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction on the held connection (or a new one): committed, or rolled back on
        any exception, after which that connection goes back to the pool."""
        conn, since = self._slot.take()
        if conn is not None and (
            conn.closed or conn.invalidated or time.monotonic() - since > self.REUSE_SECONDS
        ):
            conn.close()
            conn = None
        if conn is None:
            conn = self.engine.connect()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            conn.close()
            raise
        self._slot.put(conn)

    def release(self) -> None:
        """Give the idle connection back to the pool (none held: nothing to do)."""
        self._slot.release()


def _forget(engine: Engine, slot: _Slot) -> None:
    slot.release()
    with contextlib.suppress(sa.exc.InvalidRequestError):
        sa.event.remove(engine, "engine_disposed", slot.release)


def write(held: HeldConnection, idempotency_ttl: timedelta, batch: list[Pending]) -> None:
    """One transaction for a batch of accepted messages: rows, events, idempotency, audit."""
    with held.begin() as conn:
        write_rows(conn, idempotency_ttl, batch)


def write_rows(conn: Connection, idempotency_ttl: timedelta, batch: list[Pending]) -> None:
    """A batch's rows in the caller's transaction (``write``'s, or one that commits the
    messages together with rows of its own: a journey step's, ``Messages.write_prepared``)."""
    reject_suppressed(conn, batch)
    rcpts = [r for p in batch for r in p.recipients]
    tags = [t for p in batch for t in p.tags]
    # Each message is new, its ``event_seq`` already counts its events: number from 1.
    events = [row for p in batch for row in ev.numbered(p.events)]
    entries = [e for p in batch for e in p.audit]
    with db.pipelined(conn, max(len(batch), len(rcpts), len(tags), len(events), len(entries))):
        _INSERT_MESSAGES(conn, [p.message for p in batch])
        _INSERT_RECIPIENTS(conn, rcpts)
        _INSERT_TAGS(conn, tags)
        ev.insert(conn, events)
        # The audit head's move syncs what is queued so far; the entries go with the commit.
        appended = audit.append_on_guess(conn, entries)
    if appended is None:  # no guess, or another process appended since: read the head
        audit.append_many(conn, entries)
    keys = [p.idempotency for p in batch if p.idempotency is not None]
    if keys:
        # An expired row under the same key gives way first; then the batch's keys in one
        # executemany (a journey round's sends each carry one).
        conn.execute(
            _EXPIRED_IDEMPOTENCY,
            [
                {"b_tenant": k["tenant_id"], "b_key": k["key"], "b_before": k["created_at"] - idempotency_ttl}
                for k in keys
            ],
        )
        conn.execute(_INSERT_IDEMPOTENCY, keys)
