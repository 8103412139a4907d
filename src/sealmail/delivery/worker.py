"""The delivery worker: claim due recipients, deliver them, write back what happened.

A worker is stateless: everything it knows is in the database, so any number of them can run
on any number of hosts.  It runs as a pipeline so one slow destination never stalls the rest:
claiming tops the in-flight set up to ``worker_batch_size``; each (message, domain) group is one
SMTP transaction carrying all its recipients; outcomes are written back one flush at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from sealmail.delivery.bell import STANDBY_PATIENCE, QueueBell, wait_bound
from sealmail.delivery.gates import ClaimGate
from sealmail.delivery.options import WorkerOptions, worker_name
from sealmail.delivery.pacing import (
    CLAIM_GATHER_SECONDS,
    FLUSH_MAX,
    Bucket,
    flush_delay,
    flush_due,
    idle_delay,
)
from sealmail.delivery.protect import SecureLine
from sealmail.delivery.result import Result
from sealmail.delivery.smtp_client import OutboundTransport
from sealmail.delivery.verdict import verdict
from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.retry import RetrySchedule
from sealmail.domain.statuses import RecipientStatus
from sealmail.domain.tls_policy import Stream, TlsPolicy, TlsRequirement, resolve_requested
from sealmail.messages import queue
from sealmail.messages.queue import Claimed, QueuedMessage, RecordedOutcome
from sealmail.secureline.keydir import read_generation
from sealmail.suppressions import service as suppressions
from sealmail.tenancy.keyring import Keyring

if TYPE_CHECKING:
    from sealmail.messages.dsn import DsnSender

log = structlog.get_logger("sealmail.worker")


class Worker:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        transport: OutboundTransport,
        options: WorkerOptions,
        secureline: SecureLine,
        name: str | None = None,
        on_final: Callable[[list[RecordedOutcome]], None] | None = None,
        dsn: DsnSender | None = None,
        gates: Sequence[ClaimGate] = (),
        bell: QueueBell | None = None,
    ) -> None:
        self.engine = engine
        self.bell = bell
        self.gates = tuple(gates)
        self.keyring = keyring
        self.transport = transport
        self.options = options
        self.secureline = secureline
        self.name = name or worker_name()
        self.schedule = RetrySchedule(
            first_delay=options.retry_first_seconds,
            cap=options.retry_cap_seconds,
            max_age=options.retry_max_age_seconds,
        )
        self.on_final = on_final
        self.dsn = dsn
        self._headers: dict[str, bytes] = {}
        # Claimed ids of REQUIRETLS messages, whose DSNs ask for REQUIRETLS too (RFC 8689 §4.3).
        self._requiretls: set[str] = set()
        # Tenant key ids this worker has opened once (so the keyring holds them unwrapped).
        self._opened_keys: set[str] = set()
        self._pending: list[RecordedOutcome] = []
        self._oldest = 0.0  # monotonic time the oldest pending outcome was added
        self._dest_results: dict[str, tuple[bool, str]] = {}
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(options.worker_concurrency)
        self._buckets: dict[str, Bucket] = {}
        self._wake = asyncio.Event()
        # The last claim found less than it asked for: the queue is drained, so flushes stop claiming
        # and the loop waits for the bell or its poll (issue 18: 16 workers claimed at every flush).
        self._drained = False
        # Seconds mail must have been due for this worker's next claim: > 0 while it waits
        # for the bell's turn (``bell.STANDBY_PATIENCE``).
        self._patience = 0.0
        self.delivered = 0

    # -- driving ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish what is in flight and flush."""
        log.info("worker.started", worker=self.name)
        flusher = asyncio.create_task(self._flush_loop(stop))
        empty = 0  # claims in a row that found nothing
        try:
            while not stop.is_set():
                # Before the claim: what is queued after its read still rings (bell.py).
                mark = self.bell.mark() if self.bell is not None else None
                try:
                    claimed = await self._claim_and_start()
                except SQLAlchemyError as exc:
                    # Nothing was claimed; wait as after an empty claim, ever longer.
                    log.warning("worker.claim_failed", error=type(exc).__name__)
                    claimed = 0
                empty = 0 if claimed else empty + 1
                if not claimed or self._drained:
                    self._wake.clear()
                    answers = await self._idle(
                        mark, idle_delay(self.options.worker_poll_seconds, max(empty, 1))
                    )
                    self._patience = 0.0 if answers else STANDBY_PATIENCE
                    if self._in_flight:  # still delivering: claim what comes meanwhile in one go
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), CLAIM_GATHER_SECONDS)
        finally:
            if self.bell is not None:
                await self.bell.close()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await flusher
            try:
                await self.flush()
            except SQLAlchemyError as exc:
                # Their leases run out and another worker delivers them again: at least once.
                log.error("worker.outcomes_unrecorded", error=type(exc).__name__, count=len(self._pending))
            log.info("worker.stopped", worker=self.name)

    async def _idle(self, mark: object, delay: float) -> bool:
        """Wait ``delay`` s, or less: until a flush frees room (worker full) or mail is queued
        (queue drained: a flush freeing room then would only make an empty claim).  False
        while another worker answers the bell (``QueueBell.wait``)."""
        wait: Awaitable[object]
        bound = delay
        if self._room() <= 0:
            if self.bell is not None:
                await self.bell.step_aside()  # full: another idle worker answers the bell
            wait = self._wake.wait()
        elif self.bell is not None:
            wait, bound = self.bell.wait(mark, delay), wait_bound(delay)
        else:
            wait = asyncio.sleep(delay)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(wait, bound) is not False
        return True

    async def run_until_idle(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109 — a deadline over many awaits
        """Deliver everything due now and return (tests and the CLI's one-shot mode)."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            started = await self._claim_and_start()
            total += started
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self.flush()
            if not started and not self._tasks:
                return total
        raise TimeoutError(f"queue not idle after {timeout} s")

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        failures = 0  # flushes in a row the database refused
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), flush_delay(failures))
            if not stop.is_set() and not self._flush_now():
                continue
            try:
                await self.flush(claim=not stop.is_set())
            except SQLAlchemyError as exc:
                # A restarted or unreachable database must not end recording while this
                # worker goes on delivering: the outcomes stay pending and are written by
                # a later flush (until then their leases keep others off them).
                failures += 1
                log.warning("worker.flush_failed", error=type(exc).__name__, failures=failures)
            else:
                failures = 0

    async def flush(self, *, claim: bool = False) -> None:
        """Write finished outcomes back; with ``claim``, top up in the same transaction.

        Recording and claiming are both write transactions (on SQLite the write lock and an
        fsync each, on PostgreSQL a WAL flush); sharing one halves them under steady load.
        """
        if not self._pending and not self._dest_results:
            return
        # What is pending now, in transactions of at most FLUSH_MAX outcomes (what arrives
        # meanwhile waits for the next tick, so a busy worker still writes in batches).
        for _ in range(max(1, -(-len(self._pending) // FLUSH_MAX))):
            batch, self._pending = self._pending[:FLUSH_MAX], self._pending[FLUSH_MAX:]
            dests, self._dest_results = self._dest_results, {}
            # The room this flush frees counts; it is reserved while the transaction runs,
            # so the claim loop cannot take the same room meanwhile.
            room = self._room(freed=len(batch)) if claim and not self._drained else 0
            self._in_flight += room
            try:
                claimed, msgs = await asyncio.to_thread(self._write, batch, dests, room)
            except Exception:
                # The transaction was rolled back: nothing of it is stored, so the outcomes
                # wait for the next flush (newer destination results win).
                self._pending[:0] = batch
                self._dest_results = {**dests, **self._dest_results}
                raise
            finally:
                self._in_flight -= room
            self._in_flight -= len(batch)
            claim = False  # one claim per flush, in its first transaction
            if claimed:
                await self._start(claimed, msgs)
            self._wake.set()

    def _write(
        self, batch: list[RecordedOutcome], dests: dict[str, tuple[bool, str]], room: int = 0
    ) -> tuple[list[Claimed], dict[str, QueuedMessage]]:
        # Destination results, the first chunk of outcomes and the next claim share one
        # transaction: on SQLite every write transaction is a wait for the write lock and
        # an fsync.
        tripped: list[str] = []
        claimed: tuple[list[Claimed], dict[str, QueuedMessage]] = ([], {})
        with self.engine.begin() as conn:
            if dests:
                tripped = queue.record_destinations_in(
                    conn,
                    dests,
                    self.options.circuit_breaker_failures,
                    self.options.circuit_breaker_seconds,
                )
            queue.record_in(conn, self.name, batch)
            if room > 0:
                claimed = self._claim_in(conn, room)
        for domain in tripped:
            log.warning("destination.suspended", domain=domain, seconds=self.options.circuit_breaker_seconds)
        self.delivered += sum(1 for o in batch if o.status == RecipientStatus.DELIVERED)
        try:
            self._after_record(batch)
        except Exception as exc:  # noqa: BLE001 — the outcomes are stored; never record them twice
            log.error("worker.after_record_failed", error=type(exc).__name__, count=len(batch))
        return claimed

    def _after_record(self, batch: list[RecordedOutcome]) -> None:
        """DSNs and final-outcome hooks of a committed flush."""
        finals = [o for o in batch if o.status in (RecipientStatus.BOUNCED, RecipientStatus.EXPIRED)]
        if self.dsn is not None:
            for out in finals:
                headers = self._headers.pop(out.claimed.id, None)
                if headers is not None:
                    self.dsn.send(out, headers, requiretls=out.claimed.id in self._requiretls)
        for out in batch:
            self._headers.pop(out.claimed.id, None)
            self._requiretls.discard(out.claimed.id)
        if self.on_final:
            self.on_final(finals)

    # -- claiming ----------------------------------------------------------------------------
    def _flush_now(self) -> bool:
        """Whether the pending outcomes are worth a transaction now (``pacing.flush_due``), or
        a worker out of room waits on this flush to claim again."""
        return flush_due(len(self._pending), time.monotonic() - self._oldest) or self._room() <= 0

    def _room(self, freed: int = 0) -> int:
        """How many recipients to claim now (0: not worth a claim yet)."""
        in_flight = self._in_flight - freed
        room = self.options.worker_batch_size - in_flight
        if room <= 0:
            return 0
        if in_flight > self.options.worker_concurrency and room < self.options.worker_batch_size // 4:
            # Enough claimed work is still waiting for a delivery slot: top up in chunks
            # rather than after every flush.  Each claim is a write transaction (on SQLite
            # the write lock and an fsync), and a handful of recipients per claim made
            # claiming as frequent as recording.
            return 0
        return room

    async def _claim_and_start(self) -> int:
        room = self._room()
        if room <= 0:
            return 0
        claimed, msgs = await asyncio.to_thread(self._claim_in, None, room, self._patience)
        return await self._start(claimed, msgs)

    def _claim_in(
        self, conn: Connection | None, room: int, patience: float = 0.0
    ) -> tuple[list[Claimed], dict[str, QueuedMessage]]:
        if conn is None:  # a claim of its own (not in a record flush)
            with self.engine.begin() as own:
                return self._claim_in(own, room, patience)
        claimed = queue.claim_with_messages_in(conn, self.name, room, self.options.lease_seconds, patience)
        self._drained = len(claimed[0]) < room
        if claimed[0]:  # keyed rows kept in memory stay only while this claim sees no key change
            self.secureline.keydir.observe_generation(read_generation(conn))
        return claimed

    async def _start(self, claimed: list[Claimed], msgs: dict[str, QueuedMessage]) -> int:
        """Deliver what a claim returned, one task per (message, domain) group."""
        if not claimed:
            return 0
        # Counted as work done even when every one is then rejected or held back: more
        # may be due behind them (``run_until_idle`` stops at the first empty claim).
        taken = len(claimed)
        broadcast = [
            (c.id, c.tenant_id, c.message_id, c.address)
            for c in claimed
            if msgs[c.message_id].stream == Stream.BROADCAST
        ]
        if broadcast:
            dropped = await asyncio.to_thread(self._reject_suppressed, broadcast)
            claimed = [c for c in claimed if c.id not in dropped]
        if claimed and any(gate.concerns(claimed, msgs) for gate in self.gates):
            held = await asyncio.to_thread(self._screen, claimed, msgs)
            claimed = [c for c in claimed if c.id not in held]
        self._in_flight += len(claimed)
        groups: dict[tuple[str, str], list[Claimed]] = defaultdict(list)
        for c in claimed:
            groups[(c.message_id, c.domain)].append(c)
        for (message_id, domain), rcpts in groups.items():
            task = asyncio.create_task(self._deliver_group(msgs[message_id], domain, rcpts))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return taken

    def _reject_suppressed(self, broadcast: list[tuple[str, str, str, str]]) -> set[str]:
        with self.engine.begin() as conn:
            return suppressions.reject_claimed(conn, self.name, broadcast)

    def _screen(self, claimed: list[Claimed], msgs: dict[str, QueuedMessage]) -> set[str]:
        # One transaction for every gate: each sees the state as of this claim, so an
        # opt-out committed before it is always honoured.
        held: set[str] = set()
        with self.engine.begin() as conn:
            for gate in self.gates:
                held |= gate.screen(conn, self.name, [c for c in claimed if c.id not in held], msgs)
        return held

    # -- delivering --------------------------------------------------------------------------
    def _requested_policy(self, msg: QueuedMessage) -> TlsPolicy:
        stream = Stream(msg.stream)
        tenant_levels = msg.tenant_settings.get("tls_policy", {})
        tenant_level = tenant_levels.get(str(stream)) if isinstance(tenant_levels, dict) else None
        return resolve_requested(
            stream,
            TlsPolicy(msg.tls_policy) if msg.tls_policy else None,
            TlsPolicy(tenant_level) if tenant_level else None,
            self.options.stream_default(stream),
        )

    async def _deliver_group(self, msg: QueuedMessage, domain: str, rcpts: list[Claimed]) -> None:
        started = datetime.now(UTC)
        try:
            async with self._slots:
                if self.options.destination_rate_per_second > 0:
                    bucket = self._buckets.setdefault(
                        domain, Bucket(self.options.destination_rate_per_second)
                    )
                    await bucket.take()
                results = await self._attempt(msg, domain, rcpts)
        except Exception as exc:  # noqa: BLE001 — one broken group must not kill the worker
            log.error("worker.group_failed", error=type(exc).__name__, message_id=msg.id)
            results = [
                Result(
                    c,
                    Attempt(c.address, AttemptStatus.DEFERRED, "internal_error", type(exc).__name__),
                    None,
                    "",
                )
                for c in rcpts
            ]
        finished = datetime.now(UTC)
        attempts = [r.attempt for r in results]
        dest_failed = any(a.destination_failure for a in attempts)
        detail = next((a.detail for a in attempts if a.destination_failure), "")
        if not any(a.reason == "internal_error" for a in attempts):
            self._dest_results[domain] = (dest_failed, detail)
        done = {r.claimed.id for r in results}
        for c in rcpts:
            if c.id not in done:
                results.append(
                    Result(
                        c,
                        Attempt(
                            c.address, AttemptStatus.DEFERRED, "internal_error", "no result for recipient"
                        ),
                        None,
                        "",
                    )
                )
        if not self._pending:
            self._oldest = time.monotonic()
        for r in results:
            self._pending.append(self._outcome(msg, r, started, finished))
        if len(self._pending) >= FLUSH_MAX:
            await self.flush()

    async def _attempt(self, msg: QueuedMessage, domain: str, rcpts: list[Claimed]) -> list[Result]:
        if msg.wrapped_data_key is None or msg.tenant_key_id is None:
            return [
                Result(
                    c,
                    Attempt(
                        c.address,
                        AttemptStatus.FAILED,
                        "content_destroyed",
                        "the message content was destroyed before delivery",
                    ),
                    None,
                    "",
                )
                for c in rcpts
            ]
        args = (msg.tenant_id, msg.id, msg.tenant_key_id, msg.wrapped_data_key, msg.content)
        if msg.tenant_key_id in self._opened_keys:
            # The tenant key is in the keyring's cache (it keeps every key it unwrapped):
            # what is left is two AES-GCM opens of a few KB, far cheaper than a thread hop.
            raw = self.keyring.open(*args)
        else:
            raw = await asyncio.to_thread(self.keyring.open, *args)
            self._opened_keys.add(msg.tenant_key_id)
        if self.dsn is not None and msg.mail_from:
            # Kept only until the outcome is written: a DSN quotes a few safe headers.
            head = raw.split(b"\r\n\r\n", 1)[0]
            for c in rcpts:
                self._headers[c.id] = head
            if msg.tls_required == TlsRequirement.REQUIRETLS:
                self._requiretls.update(c.id for c in rcpts)
        return await self.secureline.deliver(
            self.transport, msg, domain, rcpts, raw, self._requested_policy(msg)
        )

    def _outcome(
        self, msg: QueuedMessage, r: Result, started: datetime, finished: datetime
    ) -> RecordedOutcome:
        """The outcome to record, with what SecureLine did: method and reason, the recipient key
        it encrypted to (the delivery trail names it), event extras and the pass's earlier
        attempts.  Built once (a frozen dataclass's ``replace`` costs another construction)."""
        c, attempt, key = r.claimed, r.attempt, r.key
        status, event, next_at, extra = verdict(
            self.schedule,
            self.options.on_tls_unavailable,
            attempt,
            c.attempts + 1,
            msg.created_at,
            finished,
            msg.expires_at,
        )
        if r.extra:
            extra = {**(extra or {}), **r.extra}
        return RecordedOutcome(
            c,
            attempt,
            started,
            finished,
            status,
            event,
            next_attempt_at=next_at,
            extra=extra,
            method=r.method,
            method_reason=r.reason or None,
            prior=r.prior,
            key_fingerprint=key.fingerprint if key is not None else None,
            key_source=key.source if key is not None else None,
        )
