"""Accepting, reading, listing and cancelling messages — the one write path of intake.

``accept`` writes the message, one recipient row per envelope recipient, their
``message.accepted`` events and the audit entry in a single transaction; the API answers
202 and the gateway 250 only after it returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain import message as mime
from sealmail.domain.intake_limits import Rule
from sealmail.domain.statuses import WAITING, MessageStatus, RecipientStatus
from sealmail.domain.tls_policy import STREAM_MINIMUM, Stream, TlsPolicy
from sealmail.errors import (
    Conflict,
    IdempotencyConflict,
    MessageRefused,
    NotFound,
    PolicyRejected,
    ValidationFailed,
)
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import (
    attempts,
    events,
    idempotency_keys,
    message_tags,
    messages,
    recipients,
)
from sealmail.suppressions import service as suppressions
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Principal, Tenancy

# Everything but the ciphertext: listing messages never drags content blobs along.
META = [c for c in messages.c if c.name not in ("content", "wrapped_data_key")]
# How long accept() reuses a tenant's verified sender domains.  A newly verified domain is
# seen at once (a miss asks again); a removed one may still be accepted for this long.
VERIFIED_DOMAINS_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class EnvelopeRecipient:
    address: str  # as given (may be UTF-8)
    ascii_domain: str
    kind: Literal["to", "cc", "bcc", "env"]


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated message ready to store, whichever door it came through."""

    stream: Stream
    source: Literal["api", "smtp", "dsn", "system", "portal"]
    mail_from: str
    header_from: str
    recipients: tuple[EnvelopeRecipient, ...]
    raw: bytes
    message_id_header: str
    tls_policy: TlsPolicy | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    send_at: datetime | None = None
    expires_at: datetime | None = None
    # Deliver even to suppressed addresses (audited; not on the broadcast stream).
    bypass_suppressions: bool = False
    # Every From and Sender mailbox of a raw message; each is checked like header_from.
    header_senders: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    request_hash: str


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Screening:
    """The DLP verdict as intake needs it: an action and which detectors fired where."""

    action: str  # none | require_encryption | portal_only | quarantine | block
    findings: tuple[dict[str, Any], ...] = ()
    reason: str = ""


Screen = Callable[[str, Submission], Screening]


class GroupCommit:
    """Group commit: concurrent ``accept`` calls share one transaction and one fsync.

    Each caller hands in its prepared rows and blocks until they are committed.  The first
    caller into an empty queue leads: it waits for the previous batch's commit (the write
    lock), takes everything queued meanwhile and commits it in one transaction, then wakes
    the others.  Under no load a batch is one message and nothing waits; under load the
    batch grows with the time a commit takes, so one writer — SQLite's single write lock,
    PostgreSQL's WAL flush — serves many requests.  Nobody returns before the commit.

    If a batch fails, its items are written again one per transaction, so one bad
    submission (an Idempotency-Key race, say) fails only its own request.
    """

    def __init__(self, write: Callable[[list[_Pending]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._writer = threading.Lock()

    def submit(self, item: _Pending) -> None:
        with self._lock:
            self._queue.append(item)
            leader = len(self._queue) == 1
        if leader:
            with self._writer:
                with self._lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        else:
            item.done.wait()
        if item.error is not None:
            raise item.error

    def _commit(self, batch: list[_Pending]) -> None:
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
            for item in batch:
                item.done.set()


@dataclass(slots=True)
class _Pending:
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


class Messages:
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
        # tenant id -> (monotonic expiry, verified sender domains)
        self._verified: dict[str, tuple[float, set[str]]] = {}
        self._commits = GroupCommit(self._write_accepted)

    # -- accept ------------------------------------------------------------------------------
    def accept(
        self,
        who: Principal,
        sub: Submission,
        idem: Idempotency | None = None,
        *,
        system: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Store a submission; returns (response body, replayed?).

        ``system`` is for mail Sealmail itself originates (DSNs), whose sender is the
        reporting MTA rather than one of the tenant's domains.
        """
        if sub.tls_policy is not None and sub.tls_policy.rank < STREAM_MINIMUM[sub.stream].rank:
            raise ValidationFailed(
                [
                    {
                        "field": "tls_policy",
                        "message": f"{sub.tls_policy} is not allowed on the {sub.stream} stream; "
                        f"use {STREAM_MINIMUM[sub.stream]} or stronger",
                    }
                ]
            )
        if not sub.recipients:
            raise ValidationFailed([{"field": "to", "message": "at least one recipient is required"}])
        if self.broadcast_refusal and sub.stream == Stream.BROADCAST and not system:
            raise ValidationFailed([{"field": "stream", "message": self.broadcast_refusal}])
        if sub.bypass_suppressions and sub.stream == Stream.BROADCAST:
            raise ValidationFailed(
                [
                    {
                        "field": "bypass_suppressions",
                        "message": "is for critical transactional or phi mail, not the broadcast stream",
                    }
                ]
            )
        if idem is not None:
            replay = self._idempotent_replay(who.tenant_id, idem)
            if replay is not None:
                return replay, True
        try:
            screening = self.screen(who.tenant_id, sub) if self.screen and not system else Screening("none")
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
        if not system:
            # Checked before the message joins a commit batch, so a wrong sender fails only
            # its own request (the verified set is cached for VERIFIED_DOMAINS_SECONDS).
            self._check_sender(who.tenant_id, sub.header_from, sub.mail_from, sub.header_senders)
        held = screening.action == "quarantine"
        now = datetime.now(UTC)
        message_id = new_id("msg")
        key_id, wrapped, blob = self.keyring.seal(who.tenant_id, message_id, sub.raw)
        due = sub.send_at if sub.send_at and sub.send_at > now else now
        rcpt_rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for rcpt in sub.recipients:
            norm = rcpt.address.lower()
            if norm in seen:
                continue  # one delivery per address even when listed in to and cc
            seen.add(norm)
            rcpt_rows.append(
                {
                    "id": new_id("rcp"),
                    "tenant_id": who.tenant_id,
                    "message_id": message_id,
                    "address": rcpt.address,
                    "domain": rcpt.ascii_domain,
                    "kind": rcpt.kind,
                    "status": RecipientStatus.QUARANTINED if held else RecipientStatus.QUEUED,
                    "next_attempt_at": due,
                    "attempts": 0,
                    "updated_at": now,
                }
            )
        response = {
            "id": message_id,
            "status": MessageStatus.QUARANTINED if held else MessageStatus.QUEUED,
            "stream": str(sub.stream),
            "message_id_header": sub.message_id_header,
            "recipients": [{"id": r["id"], "email": r["address"], "status": r["status"]} for r in rcpt_rows],
        }
        message_row = {
            "id": message_id,
            "tenant_id": who.tenant_id,
            "stream": str(sub.stream),
            "source": sub.source,
            "actor": who.credential_id,
            "mail_from": sub.mail_from,
            "header_from": sub.header_from,
            "message_id_header": sub.message_id_header[:400],
            "size": len(sub.raw),
            "tls_policy": str(sub.tls_policy) if sub.tls_policy else None,
            "tags": list(sub.tags),
            "metadata": dict(sub.metadata),
            "status": MessageStatus.QUARANTINED if held else MessageStatus.QUEUED,
            "dlp_action": screening.action,
            "dlp_findings": list(screening.findings) or None,
            "send_at": sub.send_at,
            "expires_at": sub.expires_at,
            "created_at": now,
            "event_seq": len(rcpt_rows) * (2 if held else 1),
            "tenant_key_id": key_id,
            "wrapped_data_key": wrapped,
            "content": blob,
        }
        accepted_data: dict[str, Any] = {"stream": str(sub.stream), "source": sub.source}
        if screening.findings:
            accepted_data["dlp"] = {"action": screening.action, "findings": list(screening.findings)}
        event_rows = [
            ev.NewEvent(
                who.tenant_id, message_id, ev.EventType.ACCEPTED, r["id"], r["address"], accepted_data, now
            )
            for r in rcpt_rows
        ]
        if held:
            event_rows += [
                ev.NewEvent(
                    who.tenant_id,
                    message_id,
                    ev.EventType.QUARANTINED,
                    r["id"],
                    r["address"],
                    {"reason": screening.reason},
                    now,
                )
                for r in rcpt_rows
            ]
        entries: list[audit.Entry] = []
        if held:
            entries.append(
                audit.Entry(
                    AuditAction.MESSAGE_QUARANTINED,
                    who.credential_id,
                    who.tenant_id,
                    message_id,
                    {"findings": list(screening.findings)},
                )
            )
        if sub.bypass_suppressions:
            entries.append(
                audit.Entry(AuditAction.SUPPRESSIONS_BYPASSED, who.credential_id, who.tenant_id, message_id)
            )
        entries.append(
            audit.Entry(
                AuditAction.MESSAGE_ACCEPTED,
                who.credential_id,
                who.tenant_id,
                message_id,
                {
                    "source": sub.source,
                    "stream": str(sub.stream),
                    "recipients": len(rcpt_rows),
                    "size": len(sub.raw),
                },
            )
        )
        pending = _Pending(
            message=message_row,
            recipients=rcpt_rows,
            tags=[
                {"tenant_id": who.tenant_id, "tag": t, "message_id": message_id}
                for t in dict.fromkeys(sub.tags)
            ],
            events=event_rows,
            audit=entries,
            idempotency=(
                {
                    "tenant_id": who.tenant_id,
                    "key": idem.key,
                    "request_hash": idem.request_hash,
                    "response": response,
                    "created_at": now,
                }
                if idem is not None
                else None
            ),
            response=response,
            bypass_suppressions=sub.bypass_suppressions,
        )
        try:
            # Returns only once the transaction holding these rows has committed.
            self._commits.submit(pending)
        except IntegrityError:
            # A concurrent request with the same Idempotency-Key won the race.
            if idem is not None:
                replay = self._idempotent_replay(who.tenant_id, idem)
                if replay is not None:
                    return replay, True
            raise
        return response, False

    def _write_accepted(self, batch: list[_Pending]) -> None:
        """One transaction for a batch of accepted messages: rows, events, idempotency, audit."""
        with self.engine.begin() as conn:
            _reject_suppressed(conn, batch)
            conn.execute(sa.insert(messages), [p.message for p in batch])
            conn.execute(sa.insert(recipients), [r for p in batch for r in p.recipients])
            tags = [t for p in batch for t in p.tags]
            if tags:
                conn.execute(sa.insert(message_tags), tags)
            # Each message is new, its ``event_seq`` already counts its events: number from 1.
            ev.insert(conn, [row for p in batch for row in ev.numbered(p.events)])
            for p in batch:
                if p.idempotency is None:
                    continue
                conn.execute(
                    sa.delete(idempotency_keys).where(
                        idempotency_keys.c.tenant_id == p.idempotency["tenant_id"],
                        idempotency_keys.c.key == p.idempotency["key"],
                        idempotency_keys.c.created_at < p.idempotency["created_at"] - self.idempotency_ttl,
                    )
                )
                conn.execute(sa.insert(idempotency_keys).values(**p.idempotency))
            audit.append_many(conn, [e for p in batch for e in p.audit])

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
        if row is None or row["created_at"] < datetime.now(UTC) - self.idempotency_ttl:
            return None
        if row["request_hash"] != idem.request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request body in the last 24 h; "
                "use a new key for a new message"
            )
        return dict(row["response"])

    def _verified_domains(self, tenant_id: str, *, fresh: bool = False) -> set[str]:
        hit = self._verified.get(tenant_id)
        now = time.monotonic()
        if hit is not None and not fresh and hit[0] > now:
            return hit[1]
        with db.reader(self.engine) as conn:
            verified = self.tenancy.verified_domains(conn, tenant_id)
        self._verified[tenant_id] = (now + VERIFIED_DOMAINS_SECONDS, verified)
        return verified

    def _check_sender(
        self, tenant_id: str, header_from: str, mail_from: str, others: tuple[str, ...] = ()
    ) -> None:
        verified = self._verified_domains(tenant_id)
        checks = [("from", header_from), ("mail_from", mail_from), *(("from", a) for a in others)]
        for field_name, addr in checks:
            if not addr:
                continue
            domain = _ascii_domain(addr)
            if domain not in verified:
                # A domain verified since the set was cached must not be refused: ask again.
                verified = self._verified_domains(tenant_id, fresh=True)
            if domain not in verified:
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

    # -- read --------------------------------------------------------------------------------
    def get(self, who: Principal, message_id: str) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            msg = (
                conn.execute(
                    sa.select(*META).where(messages.c.id == message_id, messages.c.tenant_id == who.tenant_id)
                )
                .mappings()
                .first()
            )
            if msg is None:
                raise NotFound(f"message {message_id} not found")
            rcpts = (
                conn.execute(
                    sa.select(recipients)
                    .where(recipients.c.message_id == message_id, recipients.c.tenant_id == who.tenant_id)
                    .order_by(recipients.c.id)
                )
                .mappings()
                .all()
            )
            tries = (
                conn.execute(
                    sa.select(attempts)
                    .where(attempts.c.message_id == message_id, attempts.c.tenant_id == who.tenant_id)
                    .order_by(attempts.c.started_at)
                )
                .mappings()
                .all()
            )
        by_rcpt: dict[str, list[dict[str, Any]]] = {}
        for a in tries:
            by_rcpt.setdefault(a["recipient_id"], []).append(_render_attempt(a))
        body = _render_message(msg)
        body["recipients"] = [{**_render_recipient(r), "attempts": by_rcpt.get(r["id"], [])} for r in rcpts]
        return body

    def content(self, who: Principal, message_id: str) -> dict[str, Any]:
        """Decrypt and return a message's content; every call is audited."""
        with self.engine.begin() as conn:
            msg = conn.execute(
                sa.select(messages.c.tenant_key_id, messages.c.wrapped_data_key, messages.c.content).where(
                    messages.c.id == message_id, messages.c.tenant_id == who.tenant_id
                )
            ).first()
            if msg is None:
                raise NotFound(f"message {message_id} not found")
            if msg.wrapped_data_key is None:
                raise NotFound(f"message {message_id}'s content has been destroyed")
            audit.append(
                conn,
                action=AuditAction.MESSAGE_CONTENT_READ,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=message_id,
            )
        raw = self.keyring.open(
            who.tenant_id, message_id, msg.tenant_key_id, msg.wrapped_data_key, msg.content
        )
        parsed = mime.parse_content(raw)
        return {
            "id": message_id,
            "subject": parsed.subject,
            "from": parsed.from_,
            "to": parsed.to,
            "cc": parsed.cc,
            "text": parsed.text,
            "html": parsed.html,
            "attachments": parsed.attachments,
            "problems": parsed.problems,
        }

    def search(
        self,
        who: Principal,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        recipient: str | None = None,
        tag: str | None = None,
        stream: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """Newest first; ``cursor`` is the last id of the previous page."""
        q = sa.select(messages.c.id).where(messages.c.tenant_id == who.tenant_id)
        if cursor:
            q = q.where(messages.c.id < cursor)
        if stream:
            q = q.where(messages.c.stream == stream)
        if since:
            q = q.where(messages.c.created_at >= since)
        if until:
            q = q.where(messages.c.created_at < until)
        if tag:
            q = q.where(
                messages.c.id.in_(
                    sa.select(message_tags.c.message_id).where(
                        message_tags.c.tenant_id == who.tenant_id, message_tags.c.tag == tag
                    )
                )
            )
        if recipient or status:
            sub = sa.select(recipients.c.message_id).where(recipients.c.tenant_id == who.tenant_id)
            if recipient:
                sub = sub.where(sa.func.lower(recipients.c.address) == recipient.lower())
            if status:
                sub = sub.where(recipients.c.status == status)
            q = q.where(messages.c.id.in_(sub))
        with db.reader(self.engine) as conn:
            ids = [r.id for r in conn.execute(q.order_by(messages.c.id.desc()).limit(limit + 1))]
            rows = (
                conn.execute(
                    sa.select(*META)
                    .where(messages.c.id.in_(ids), messages.c.tenant_id == who.tenant_id)
                    .order_by(messages.c.id.desc())
                )
                .mappings()
                .all()
                if ids
                else []
            )
            page = rows[:limit]
            counts: dict[str, dict[str, int]] = {}
            if page:
                for r in conn.execute(
                    sa.select(recipients.c.message_id, recipients.c.status, sa.func.count())
                    .where(
                        recipients.c.message_id.in_([p["id"] for p in page]),
                        recipients.c.tenant_id == who.tenant_id,
                    )
                    .group_by(recipients.c.message_id, recipients.c.status)
                ):
                    counts.setdefault(r[0], {})[r[1]] = int(r[2])
        data = [{**_render_message(r), "recipient_status": counts.get(r["id"], {})} for r in page]
        more = len(rows) > limit
        return {"data": data, "next_cursor": page[-1]["id"] if more and page else None}

    # -- quarantine ---------------------------------------------------------------------------
    def quarantined(self, who: Principal, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        q = sa.select(*META).where(
            messages.c.tenant_id == who.tenant_id, messages.c.status == MessageStatus.QUARANTINED
        )
        if cursor:
            q = q.where(messages.c.id < cursor)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q.order_by(messages.c.id.desc()).limit(limit + 1)).mappings().all()
        page = rows[:limit]
        return {
            "data": [
                {**_render_message(r), "dlp": {"action": r["dlp_action"], "findings": r["dlp_findings"]}}
                for r in page
            ],
            "next_cursor": page[-1]["id"] if len(rows) > limit and page else None,
        }

    def release(self, who: Principal, message_id: str) -> dict[str, Any]:
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
            ev.write(
                conn,
                [
                    ev.NewEvent(
                        who.tenant_id,
                        message_id,
                        ev.EventType.RELEASED,
                        r.id,
                        r.address,
                        {"by": who.credential_id},
                        now,
                    )
                    for r in released
                ],
            )
            audit.append(
                conn,
                action=AuditAction.MESSAGE_RELEASED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=message_id,
            )
        return {"id": message_id, "released": [r.id for r in released]}

    # -- cancel ------------------------------------------------------------------------------
    def cancel(self, who: Principal, message_id: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            msg = conn.execute(
                sa.select(messages.c.id).where(
                    messages.c.id == message_id, messages.c.tenant_id == who.tenant_id
                )
            ).first()
            if msg is None:
                raise NotFound(f"message {message_id} not found")
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
                raise Conflict(
                    f"message {message_id} has no queued recipients left to cancel "
                    "(already delivered, in flight or finished)"
                )
            ev.write(
                conn,
                [
                    ev.NewEvent(
                        who.tenant_id,
                        message_id,
                        ev.EventType.CANCELLED,
                        r.id,
                        r.address,
                        {"by": who.credential_id},
                        now,
                    )
                    for r in cancelled
                ],
            )
            conn.execute(
                sa.update(messages).where(messages.c.id == message_id).values(status=MessageStatus.CANCELLED)
            )
            audit.append(
                conn,
                action=AuditAction.MESSAGE_CANCELLED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=message_id,
                details={"recipients": len(cancelled)},
            )
        return {"id": message_id, "cancelled": [r.id for r in cancelled]}

    # -- events ------------------------------------------------------------------------------
    def list_events(
        self,
        who: Principal,
        *,
        limit: int = 100,
        cursor: str | None = None,
        type_: str | None = None,
        message_id: str | None = None,
        recipient: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """Oldest first, as a feed; ``cursor`` is the last id already seen."""
        q = sa.select(events).where(events.c.tenant_id == who.tenant_id)
        if cursor:
            q = q.where(events.c.id > cursor)
        if type_:
            q = q.where(events.c.type.in_(type_.split(",")))
        if message_id:
            q = q.where(events.c.message_id == message_id)
        if recipient:
            q = q.where(sa.func.lower(events.c.recipient) == recipient.lower())
        if since:
            q = q.where(events.c.created_at >= since)
        if until:
            q = q.where(events.c.created_at < until)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q.order_by(events.c.id).limit(limit + 1)).mappings().all()
        page = rows[:limit]
        return {
            "data": [ev.render(r) for r in page],
            "next_cursor": page[-1]["id"] if len(rows) > limit and page else None,
        }


def _reject_suppressed(conn: Connection, batch: list[_Pending]) -> None:
    """Mark suppressed recipients ``rejected`` with a ``message.rejected`` event: one lookup per batch.

    Inside the commit's transaction, so an entry added a moment ago is seen.  Written to be
    run again on the same items (a failed batch is retried one item per transaction).
    """
    checked = [p for p in batch if not p.bypass_suppressions]
    found = suppressions.lookup(conn, ((r["tenant_id"], r["address"]) for p in checked for r in p.recipients))
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


def _ascii_domain(addr: str) -> str:
    import idna

    domain = addr.rpartition("@")[2].strip().rstrip(">").lower()
    try:
        return idna.encode(domain, uts46=True).decode()
    except idna.IDNAError:
        return domain


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _render_message(m: Any) -> dict[str, Any]:
    return {
        "id": m["id"],
        "stream": m["stream"],
        "source": m["source"],
        "from": m["header_from"],
        "mail_from": m["mail_from"],
        "message_id_header": m["message_id_header"],
        "size": m["size"],
        "tls_policy": m["tls_policy"],
        "tags": m["tags"],
        "metadata": m["metadata"],
        "status": m["status"],
        "send_at": _iso(m["send_at"]),
        "expires_at": _iso(m["expires_at"]),
        "created_at": _iso(m["created_at"]),
    }


def _render_recipient(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "email": r["address"],
        "kind": r["kind"],
        "status": r["status"],
        "attempt_count": r["attempts"],
        "next_attempt_at": _iso(r["next_attempt_at"]) if r["status"] in WAITING else None,
        "last_reason": r["last_reason"],
        "last_detail": r["last_detail"],
        "updated_at": _iso(r["updated_at"]),
    }


def _render_attempt(a: Any) -> dict[str, Any]:
    return {
        "id": a["id"],
        "started_at": _iso(a["started_at"]),
        "finished_at": _iso(a["finished_at"]),
        "status": a["status"],
        "reason": a["reason"],
        "detail": a["detail"],
        "mx_host": a["mx_host"],
        "mx_ip": a["mx_ip"],
        "tls": {
            "version": a["tls_version"],
            "cipher": a["tls_cipher"],
            "verified": a["tls_verified"],
            "verified_by": a["verified_by"],
        },
        "smtp": {"code": a["smtp_code"], "enhanced": a["enhanced_code"], "reply": a["reply"]},
    }
