"""Accepting, reading, listing and cancelling messages — the one write path of intake.

``accept`` writes the message, one recipient row per envelope recipient, their
``message.accepted`` events and the audit entry in a single transaction; the API answers
202 and the gateway 250 only after it returns.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.intake_limits import Rule
from sealmail.domain.page import Page
from sealmail.domain.statuses import MessageStatus, RecipientStatus
from sealmail.errors import (
    Conflict,
    IdempotencyConflict,
    MessageRefused,
    NotFound,
    PolicyRejected,
    ValidationFailed,
)
from sealmail.ids import new_id
from sealmail.messages import accept as accepting
from sealmail.messages import group_commit
from sealmail.messages.accept import Accepted, AcceptedRecipient
from sealmail.messages.group_commit import GroupCommit
from sealmail.messages.lane import Lane, LaneJob
from sealmail.messages.reading import META, Reading
from sealmail.messages.submission import (
    EnvelopeRecipient,
    Idempotency,
    Screen,
    Screening,
    Submission,
    request_hash,
)
from sealmail.messages.views import HeldMessage, held_message
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import idempotency_keys, messages, recipients
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Principal, Tenancy

# Messages in ``submit_async`` at once per event loop (the bound a thread pool gave):
# past it a request waits before screening, holding nothing but its own body.
IN_FLIGHT_PER_LOOP = 64


@dataclass(frozen=True, slots=True)
class Moved:
    """The recipients a release (to ``queued``) or a cancel (to ``cancelled``) moved."""

    message_id: str
    recipient_ids: tuple[str, ...]


# What callers import from here: the service and the values it takes and returns.
__all__ = [
    "Accepted",
    "AcceptedRecipient",
    "EnvelopeRecipient",
    "Idempotency",
    "Messages",
    "Moved",
    "Screen",
    "Screening",
    "Submission",
    "request_hash",
]


class Messages(Reading):
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        tenancy: Tenancy,
        ttl_seconds: int,
        screen: Screen | None = None,
        broadcast_refusal: str | None = None,
    ) -> None:
        self.engine = engine
        # Why broadcast mail cannot be accepted in this deployment (an http: unsubscribe
        # URL, see app.broadcast_refusal), or None.
        self.broadcast_refusal = broadcast_refusal
        self.keyring = keyring
        self.tenancy = tenancy
        self.idempotency_ttl = timedelta(seconds=ttl_seconds)
        # DLP at intake: a blocked message is refused before anything is stored, a
        # quarantined one is stored but held until released.
        self.screen = screen
        self._commits = GroupCommit(
            partial(group_commit.write, group_commit.HeldConnection(engine), self.idempotency_ttl)
        )
        # The doors' messages on an event loop (the SMTP gateway's, the API's): built,
        # prepared and committed in one thread.
        self._lane = Lane(self._commits)
        self._in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    # -- accept ------------------------------------------------------------------------------
    def submit(
        self,
        who: Principal,
        sub: Submission,
        idem: Idempotency | None = None,
        *,
        system: bool = False,
    ) -> tuple[Accepted, bool]:
        """Store a submission; returns (what was stored, replayed?).

        ``system`` is for mail Sealmail itself originates (DSNs), whose sender is the
        reporting MTA rather than one of the tenant's domains.
        """
        accepting.validate(sub, system=system, broadcast_refusal=self.broadcast_refusal)
        if idem is not None:
            replay = self._idempotent_replay(who.tenant_id, idem)
            if replay is not None:
                return Accepted.from_record(replay), True
        # From here this caller is on its way to a commit batch: a leader may wait for it.
        with self._commits.expect() as commit:
            item = self._prepared(who, sub, idem, system=system)
            try:
                # Returns only once the transaction holding these rows has committed.
                commit(item)
            except IntegrityError:
                # A concurrent request with the same Idempotency-Key won the race.
                if idem is not None:
                    replay = self._idempotent_replay(who.tenant_id, idem)
                    if replay is not None:
                        return Accepted.from_record(replay), True
                raise
        return Accepted.from_record(item.response), False

    def prepare(
        self, who: Principal, sub: Submission, idem: Idempotency | None = None
    ) -> group_commit.Pending:
        """``submit`` up to the commit — validated, screened, sender-checked and sealed —
        for a caller that stores the message in its own transaction together with rows of
        its own (``write_prepared``), so both commit or neither does."""
        accepting.validate(sub, system=False, broadcast_refusal=self.broadcast_refusal)
        return self._prepared(who, sub, idem, system=False)

    def write_prepared(self, conn: Connection, item: group_commit.Pending) -> Accepted:
        """Store a prepared message in the caller's open transaction (suppressions checked
        there); what was stored once that transaction commits."""
        group_commit.write_rows(conn, self.idempotency_ttl, [item])
        return Accepted.from_record(item.response)

    def write_prepared_many(self, conn: Connection, items: list[group_commit.Pending]) -> list[Accepted]:
        """``write_prepared`` for many messages, their rows written together (a journey
        round's sends: one insert per table instead of a round trip per row)."""
        group_commit.write_rows(conn, self.idempotency_ttl, items)
        return [Accepted.from_record(item.response) for item in items]

    def replayed(self, tenant_id: str, idem: Idempotency) -> Accepted | None:
        """What an idempotency key already stored in the last TTL, if anything."""
        replay = self._idempotent_replay(tenant_id, idem)
        return None if replay is None else Accepted.from_record(replay)

    def replayed_many(self, tenant_id: str, idems: list[Idempotency]) -> dict[str, Accepted]:
        """``replayed`` for many keys in one query: key -> what it stored in the last TTL.

        A key stored for a different request raises ``IdempotencyConflict`` as ``replayed``
        does."""
        if not idems:
            return {}
        hashes = {i.key: i.request_hash for i in idems}
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key.in_(list(hashes))
                )
            ).mappings()
            found = {r["key"]: r for r in rows}
        replays = {key: self._replay_of(row, hashes[key]) for key, row in found.items()}
        return {key: Accepted.from_record(r) for key, r in replays.items() if r is not None}

    async def submit_async(
        self, who: Principal, sub: Submission, idem: Idempotency | None = None
    ) -> tuple[Accepted, bool]:
        """``submit`` for a door on an event loop: the same checks, rows, errors and replays.

        Screening, the sender check and sealing run in the intake lane's thread
        (``messages.lane``), which commits what it prepared in its own batches: one hand-off
        per message and one wake-up of this loop per batch, where a thread hop to prepare
        and a group-commit arrival per message cost the API more CPU than the gateway
        (bench/README.md, "Tenth pass: the API's intake").  The future completes once the
        batch holding the message is durable, so nothing is acknowledged before its commit.
        """
        async with self._slot():
            accepting.validate(sub, system=False, broadcast_refusal=self.broadcast_refusal)
            if idem is not None:
                replay = await asyncio.to_thread(self._idempotent_replay, who.tenant_id, idem)
                if replay is not None:
                    return Accepted.from_record(replay), True
            job = self._lane.submit(partial(self._prepared, who, sub, idem, system=False))
            try:
                await job.future
            except IntegrityError:
                # A concurrent request with the same Idempotency-Key won the race.
                if idem is not None:
                    replay = await asyncio.to_thread(self._idempotent_replay, who.tenant_id, idem)
                    if replay is not None:
                        return Accepted.from_record(replay), True
                raise
            assert job.item is not None  # set before the future completes
            return Accepted.from_record(job.item.response), False

    def enqueue(self, who: Principal, build: Callable[[], Submission]) -> LaneJob:
        """``submit`` for a door on an event loop that has raw bytes to build the submission
        from (the SMTP gateway): ``build`` and everything ``submit`` does before the commit
        run in the lane's thread (``messages.lane``), which commits them in its own batches.

        Await the job's ``future``: it completes once the message is committed, or with the
        error ``build`` or ``submit`` raised (the same errors, rows, events and audit entries
        as ``submit``).
        """
        return self._lane.submit(partial(self._lane_prepared, who, build))

    def _lane_prepared(self, who: Principal, build: Callable[[], Submission]) -> group_commit.Pending:
        sub = build()
        accepting.validate(sub, system=False, broadcast_refusal=self.broadcast_refusal)
        return self._prepared(who, sub, None, system=False)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of this event loop's ``IN_FLIGHT_PER_LOOP`` places."""
        loop = asyncio.get_running_loop()
        slots = self._in_flight.get(loop)
        if slots is None:
            slots = self._in_flight.setdefault(loop, asyncio.Semaphore(IN_FLIGHT_PER_LOOP))
        async with slots:
            yield

    def _prepared(
        self, who: Principal, sub: Submission, idem: Idempotency | None, *, system: bool
    ) -> group_commit.Pending:
        """Screened, sender-checked and sealed: the rows one accepted message becomes."""
        screening = Screening("none") if system else self._screen(who, sub)
        if not system:
            # Checked before the message joins a commit batch, so a wrong sender fails only
            # its own request (Tenancy caches the verified set for a few seconds).
            self._check_sender(who.tenant_id, sub.header_from, sub.mail_from, sub.header_senders)
        now = datetime.now(UTC)
        message_id = new_id("msg")
        sealed = accepting.Sealed(*self.keyring.seal(who.tenant_id, message_id, sub.raw))
        return accepting.pending(who, sub, screening, sealed, message_id, idem, now)

    def _screen(self, who: Principal, sub: Submission) -> Screening:
        """DLP at intake; a blocked message is audited and refused, nothing is stored."""
        if self.screen is None:
            return Screening("none")
        try:
            screening = self.screen(who.tenant_id, sub)
        except RecursionError as exc:
            # The intake limits bound MIME depth first; should a parser still recurse too
            # deep, that is the message's fault (permanent), not a 500 or a 451.
            raise MessageRefused(Rule.MIME_TOO_DEEP, "the message nests too deeply to parse") from exc
        if screening.action == "block":
            with self.engine.begin() as conn:
                audit.append(
                    conn,
                    action=AuditAction.MESSAGE_BLOCKED,
                    actor=who.credential_id,
                    tenant_id=who.tenant_id,
                    details={"findings": list(screening.findings)},
                )
            raise PolicyRejected(
                f"blocked by this organisation's data-loss-prevention rules: {screening.reason}; "
                "remove the protected information or ask an administrator to change the rule",
                findings=list(screening.findings),
            )
        return screening

    def _idempotent_replay(self, tenant_id: str, idem: Idempotency) -> dict[str, Any] | None:
        with db.reader(self.engine) as conn:
            row = (
                conn.execute(
                    sa.select(idempotency_keys).where(
                        idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == idem.key
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else self._replay_of(row, idem.request_hash)

    def _replay_of(self, row: Any, request_hash: str) -> dict[str, Any] | None:
        """A stored key's response if still within the TTL; a different request is a conflict."""
        if row["created_at"] < datetime.now(UTC) - self.idempotency_ttl:
            return None
        if row["request_hash"] != request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request body in the last 24 h; "
                "use a new key for a new message"
            )
        return dict(row["response"])

    def _check_sender(
        self, tenant_id: str, header_from: str, mail_from: str, others: tuple[str, ...] = ()
    ) -> None:
        # Tenancy caches the verified set briefly and asks again on a miss, so a domain
        # verified a moment ago (in any process) is never refused.
        checks = [("from", header_from), ("mail_from", mail_from), *(("from", a) for a in others)]
        for field_name, addr in checks:
            if not addr:
                continue
            domain = _ascii_domain(addr)
            if not self.tenancy.is_verified_sender_domain(tenant_id, domain):
                raise ValidationFailed(
                    [
                        {
                            "field": field_name,
                            "message": f"{domain} is not a verified sender domain of this tenant; "
                            "add and verify it with `sealmail domains add`",
                        }
                    ]
                )

    def envelope_sender(self, tenant_id: str, message_id: str) -> str:
        with db.reader(self.engine) as conn:
            value = conn.execute(
                sa.select(messages.c.mail_from).where(
                    messages.c.id == message_id, messages.c.tenant_id == tenant_id
                )
            ).scalar_one_or_none()
        return str(value or "")

    # -- quarantine ---------------------------------------------------------------------------
    def quarantined(self, who: Principal, limit: int = 100, cursor: str | None = None) -> Page[HeldMessage]:
        q = sa.select(*META).where(
            messages.c.tenant_id == who.tenant_id, messages.c.status == MessageStatus.QUARANTINED
        )
        if cursor:
            q = q.where(messages.c.id < cursor)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q.order_by(messages.c.id.desc()).limit(limit + 1)).mappings().all()
        page = rows[:limit]
        return Page(
            tuple(held_message(r) for r in page), page[-1]["id"] if len(rows) > limit and page else None
        )

    def release(self, who: Principal, message_id: str) -> Moved:
        """Release a quarantined message for delivery (audited, one event per recipient)."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            msg = conn.execute(
                sa.select(messages.c.status).where(
                    messages.c.id == message_id, messages.c.tenant_id == who.tenant_id
                )
            ).first()
            if msg is None:
                raise NotFound(f"message {message_id} not found")
            if msg.status != MessageStatus.QUARANTINED:
                raise Conflict(f"message {message_id} is not in quarantine")
            released = conn.execute(
                sa.update(recipients)
                .where(
                    recipients.c.message_id == message_id,
                    recipients.c.tenant_id == who.tenant_id,
                    recipients.c.status == RecipientStatus.QUARANTINED,
                )
                .values(status=RecipientStatus.QUEUED, next_attempt_at=now, updated_at=now)
                .returning(recipients.c.id, recipients.c.address)
            ).all()
            # A reviewer's release lets the message go, but the PHI found is still there:
            # it leaves with message-level protection (pgp, smime or the portal).
            conn.execute(
                sa.update(messages)
                .where(messages.c.id == message_id)
                .values(status=MessageStatus.QUEUED, dlp_action="require_encryption")
            )
            _moved_by(conn, who, message_id, ev.EventType.RELEASED, released, now)
            audit.append(
                conn,
                action=AuditAction.MESSAGE_RELEASED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=message_id,
            )
        return Moved(message_id, tuple(r.id for r in released))

    # -- cancel ------------------------------------------------------------------------------
    def cancel(self, who: Principal, message_id: str) -> Moved:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            msg = conn.execute(
                sa.select(messages.c.id).where(
                    messages.c.id == message_id, messages.c.tenant_id == who.tenant_id
                )
            ).first()
            if msg is None:
                raise NotFound(f"message {message_id} not found")
            cancelled = cancel_waiting(conn, who, message_id, now)
            if not cancelled:
                raise Conflict(
                    f"message {message_id} has no queued recipients left to cancel "
                    "(already delivered, in flight or finished)"
                )
        return Moved(message_id, cancelled)


def cancel_waiting(conn: Connection, who: Principal, message_id: str, now: datetime) -> tuple[str, ...]:
    """Cancel the message's recipients not yet tried or waiting to retry, in the caller's
    transaction (a cancel, or a recall that also closes the portal): their events, the
    message's status and the audit entry with ``who``.  The ids cancelled; none, nothing written."""
    cancelled = conn.execute(
        sa.update(recipients)
        .where(
            recipients.c.message_id == message_id,
            recipients.c.tenant_id == who.tenant_id,
            recipients.c.status.in_((RecipientStatus.QUEUED, RecipientStatus.DEFERRED)),
        )
        .values(status=RecipientStatus.CANCELLED, updated_at=now, lease_owner=None, lease_until=None)
        .returning(recipients.c.id, recipients.c.address)
    ).all()
    if not cancelled:
        return ()
    _moved_by(conn, who, message_id, ev.EventType.CANCELLED, cancelled, now)
    conn.execute(
        sa.update(messages)
        .where(messages.c.id == message_id, messages.c.tenant_id == who.tenant_id)
        .values(status=MessageStatus.CANCELLED)
    )
    audit.append(
        conn,
        action=AuditAction.MESSAGE_CANCELLED,
        actor=who.credential_id,
        tenant_id=who.tenant_id,
        target=message_id,
        details={"recipients": len(cancelled)},
    )
    return tuple(r.id for r in cancelled)


def _moved_by(
    conn: Connection, who: Principal, message_id: str, type_: ev.EventType, rows: Sequence[Any], now: datetime
) -> None:
    """One event per recipient a release or a cancel moved, naming the credential that did it."""
    by = {"by": who.credential_id}
    ev.write(
        conn, [ev.NewEvent(who.tenant_id, message_id, type_, r.id, r.address, dict(by), now) for r in rows]
    )


def _ascii_domain(addr: str) -> str:
    import idna

    domain = addr.rpartition("@")[2].strip().rstrip(">").lower()
    if domain.isascii():
        # UTS #46 maps an ASCII name only by case, and a name IDNA refuses comes back as is:
        # either way the answer is ``domain``, without idna's per-label work on every message.
        return domain
    try:
        return idna.encode(domain, uts46=True).decode()
    except idna.IDNAError:
        return domain
