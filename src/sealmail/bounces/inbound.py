"""Inbound reports: match a DSN or ARF report to one recipient and apply it.

One transaction per report holds everything it changes: the evidence row, the recipient's
state, the event (the webhook outbox) and the suppression.  The gateway answers 250 only
after it committed.

Matching (the tenant is always the matched recipient's tenant, so a report can only touch
the recipient its signature names):

* a report sent to a signed return path names its recipient by that signature — the
  authoritative way, which survives MTAs that mangle or drop the returned message;
* a report sent to the feedback-loop address is matched from the returned original: a
  signed return path in its Return-Path, else our trace header (the message id) together
  with Original-Rcpt-To or the original's To.

What a report does:

* DSN ``failed``: the recipient becomes ``bounced`` (also when it was ``delivered`` —
  remote MTAs accept first and bounce later), a ``message.bounced`` event with
  ``async: true``, and a hard-bounce suppression when the status names a bad mailbox or
  domain (``services/suppressions.outcome_rule``; 5.7.x policy refusals never suppress);
* DSN ``delayed``: a ``message.deferred`` event with ``async: true``, no state change;
* DSN ``delivered`` / ``relayed`` / ``expanded``: kept as evidence only;
* ARF complaint (``abuse``, ``fraud``, ``virus``, ``other``): ``message.complained`` and
  the complaint suppression (``suppressions.suppress_complaint``).

The same recipient, kind, action and status arriving again is a no-op (unique
``fingerprint`` in ``feedback_reports``).  Events carry status tokens and the remote MTA,
never subject or body.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from sealmail.bounces.return_path import ReportAddress, ReturnPathSigner
from sealmail.bounces.tables import feedback_reports
from sealmail.domain import reports, verp
from sealmail.domain.message import TRACE_HEADER
from sealmail.domain.retry import classify
from sealmail.domain.statuses import RecipientStatus
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import messages, recipients
from sealmail.suppressions import service as suppressions

# RFC 5965 §7.3 feedback types that are complaints about our mail.  "not-spam" says the
# opposite and "auth-failure" (RFC 6591) reports an authentication result, not a person.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
# A recipient in one of these states can still turn into BOUNCED.
_BOUNCEABLE = frozenset(
    {RecipientStatus.QUEUED, RecipientStatus.DEFERRED, RecipientStatus.DELIVERING, RecipientStatus.DELIVERED}
)


class ReportOutcome(enum.StrEnum):
    """What one report did; also the metric and log token (never an address)."""

    BOUNCED = "bounced"
    DEFERRED = "deferred"
    COMPLAINED = "complained"
    RECORDED = "recorded"  # evidence only: delivered/relayed, not-spam, already bounced …
    DUPLICATE = "duplicate"
    UNMATCHED = "unmatched"
    UNRECOGNIZED = "unrecognized"


@dataclass(frozen=True, slots=True)
class _Target:
    id: str
    tenant_id: str
    message_id: str
    address: str
    status: str
    attempts: int
    stream: str


def _insert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _fingerprint(recipient_id: str, kind: str, action: str, status: str | None) -> str:
    return hashlib.sha256(f"{recipient_id}|{kind}|{action}|{status or ''}".encode()).hexdigest()


class ReportIntake:
    def __init__(self, engine: Engine, signer: ReturnPathSigner) -> None:
        self.engine = engine
        self.signer = signer

    def recognise(self, rcpt: Any) -> ReportAddress:
        return self.signer.recognise(rcpt)

    def process(
        self,
        raw: bytes,
        targets: Sequence[ReportAddress],
        *,
        null_sender: bool,
        now: datetime | None = None,
    ) -> list[ReportOutcome]:
        """Parse, match and apply one inbound report; one outcome per recipient it concerned."""
        report = reports.parse(raw, trace_header=TRACE_HEADER, null_sender=null_sender)
        if isinstance(report, reports.Unrecognized):
            return [ReportOutcome.UNRECOGNIZED]
        now = now or datetime.now(UTC)
        ids = list(dict.fromkeys(t.recipient_id for t in targets if t.kind == "verp" and t.recipient_id))
        with db.write(self.engine) as conn:
            if not ids and any(t.kind == "fbl" for t in targets):
                found = self._from_original(conn, report)
                ids = [found] if found else []
            if not ids:
                return [ReportOutcome.UNMATCHED]
            return [self._apply(conn, rid, report, now) for rid in ids]

    # -- matching ----------------------------------------------------------------------------
    def _from_original(self, conn: Connection, report: reports.Dsn | reports.Arf) -> str | None:
        original = report.original
        if original is None:
            return None
        if original.return_path:
            local = original.return_path.rsplit("@", 1)[0]
            if verp.looks_signed(local):
                # A signed return path decides alone: a bad tag matches nothing.
                return verp.verify(self.signer.key, local)
        if not original.trace_id:
            return None
        wanted = list(report.original_rcpt_to) if isinstance(report, reports.Arf) else []
        wanted += list(original.to)
        if not wanted:
            return None
        rows = conn.execute(
            sa.select(recipients.c.id, recipients.c.address).where(
                recipients.c.message_id == original.trace_id
            )
        ).all()
        by_address = {r.address.lower(): r.id for r in rows}
        for address in wanted:
            if address.lower() in by_address:
                return str(by_address[address.lower()])
        return None

    def _target(self, conn: Connection, recipient_id: str) -> _Target | None:
        query = (
            sa.select(
                recipients.c.id,
                recipients.c.tenant_id,
                recipients.c.message_id,
                recipients.c.address,
                recipients.c.status,
                recipients.c.attempts,
                messages.c.stream,
            )
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(recipients.c.id == recipient_id, messages.c.tenant_id == recipients.c.tenant_id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=recipients)
        row = conn.execute(query).first()
        if row is None:
            return None
        return _Target(
            row.id, row.tenant_id, row.message_id, row.address, row.status, row.attempts, row.stream
        )

    # -- applying ----------------------------------------------------------------------------
    def _apply(
        self, conn: Connection, recipient_id: str, report: reports.Dsn | reports.Arf, now: datetime
    ) -> ReportOutcome:
        target = self._target(conn, recipient_id)
        if target is None:
            # Signed by us but gone (retention, crypto-shredding): nothing left to update.
            return ReportOutcome.UNMATCHED
        if isinstance(report, reports.Arf):
            return self._complaint(conn, target, report, now)
        block = _block_for(report, target.address)
        if block is None:
            return ReportOutcome.UNMATCHED
        return self._dsn(conn, target, report, block, now)

    def _record(
        self,
        conn: Connection,
        target: _Target,
        *,
        kind: str,
        action: str,
        outcome: ReportOutcome,
        now: datetime,
        status: str | None = None,
        classification: str | None = None,
        diagnostic: str | None = None,
        remote_mta: str | None = None,
        reporting_mta: str | None = None,
        heuristic: bool = False,
    ) -> bool:
        """Insert the evidence row; False when this report was already recorded."""
        inserted = conn.execute(
            _insert(conn)(feedback_reports)
            .values(
                id=new_id("fbr"),
                tenant_id=target.tenant_id,
                message_id=target.message_id,
                recipient_id=target.id,
                kind=kind,
                action=action[:20],
                status=status,
                classification=classification,
                diagnostic=(diagnostic or "")[:500] or None,
                remote_mta=(remote_mta or "")[:255] or None,
                reporting_mta=(reporting_mta or "")[:255] or None,
                heuristic=heuristic,
                outcome=str(outcome),
                fingerprint=_fingerprint(target.id, kind, action, status),
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["recipient_id", "fingerprint"])
            .returning(feedback_reports.c.id)
        ).first()
        return inserted is not None

    def _dsn(
        self,
        conn: Connection,
        target: _Target,
        report: reports.Dsn,
        block: reports.DeliveryStatus,
        now: datetime,
    ) -> ReportOutcome:
        status = block.status or ("5.0.0" if block.action == "failed" else None)
        classification = (
            str(classify(None, status, block.diagnostic)) if block.action in ("failed", "delayed") else None
        )
        if block.action == "failed":
            outcome = ReportOutcome.BOUNCED if target.status in _BOUNCEABLE else ReportOutcome.RECORDED
        elif block.action == "delayed":
            outcome = ReportOutcome.DEFERRED
        else:
            outcome = ReportOutcome.RECORDED
        fresh = self._record(
            conn,
            target,
            kind="dsn",
            action=block.action,
            outcome=outcome,
            now=now,
            status=status,
            classification=classification,
            diagnostic=block.diagnostic,
            remote_mta=block.remote_mta,
            reporting_mta=report.reporting_mta,
            heuristic=report.heuristic,
        )
        if not fresh:
            return ReportOutcome.DUPLICATE
        data: dict[str, Any] = {
            "async": True,
            "origin": "dsn",
            "status": status,
            "classification": classification,
            "reason": classification,
            "remote_mta": block.remote_mta,
            "reporting_mta": report.reporting_mta,
            "heuristic": report.heuristic,
            "smtp": {"code": None, "enhanced": status},
        }
        if block.diagnostic:
            data["detail"] = block.diagnostic[:500]
        if outcome is ReportOutcome.BOUNCED:
            detail = f"asynchronous bounce {status}: {block.diagnostic or ''}"
            self._mark_bounced(conn, target, classification, detail, now)
            data["bounce"] = {"type": "hard", "classification": classification, "origin": "dsn"}
            self._emit(conn, target, ev.EventType.BOUNCED, data, now)
        elif outcome is ReportOutcome.DEFERRED:
            self._emit(conn, target, ev.EventType.DEFERRED, data, now)
        if block.action == "failed":
            # Also for a recipient already bounced or expired: the list learns the address
            # is dead either way (suppress is idempotent).
            self._suppress_dead(conn, target, classification, now)
        return outcome

    @staticmethod
    def _mark_bounced(
        conn: Connection, target: _Target, classification: str | None, detail: str, now: datetime
    ) -> None:
        conn.execute(
            sa.update(recipients)
            .where(recipients.c.id == target.id)
            .values(
                status=RecipientStatus.BOUNCED,
                lease_owner=None,
                lease_until=None,
                last_reason=(classification or "bounced")[:40],
                last_detail=detail.strip()[:500],
                updated_at=now,
            )
        )

    @staticmethod
    def _suppress_dead(conn: Connection, target: _Target, classification: str | None, now: datetime) -> None:
        rule = suppressions.outcome_rule(
            RecipientStatus.BOUNCED, classification, classification or "", target.attempts, replied=True
        )
        if rule is None:
            return
        reason, ttl = rule
        suppressions.suppress(
            conn,
            tenant_id=target.tenant_id,
            stream=suppressions.ALL_STREAMS,
            address=target.address,
            reason=reason,
            source="dsn",
            actor="system",
            message_id=target.message_id,
            expires_at=now + ttl if ttl else None,
            now=now,
        )

    def _complaint(
        self, conn: Connection, target: _Target, report: reports.Arf, now: datetime
    ) -> ReportOutcome:
        complaint = report.feedback_type in COMPLAINT_TYPES
        outcome = ReportOutcome.COMPLAINED if complaint else ReportOutcome.RECORDED
        if not self._record(conn, target, kind="arf", action=report.feedback_type, outcome=outcome, now=now):
            return ReportOutcome.DUPLICATE
        if complaint:
            data = {
                "async": True,
                "origin": "arf",
                "feedback_type": report.feedback_type,
                "reason": "complaint",
                "user_agent": report.user_agent,
            }
            self._emit(conn, target, ev.EventType.COMPLAINED, data, now)
            suppressions.suppress_complaint(
                conn,
                tenant_id=target.tenant_id,
                address=target.address,
                source="fbl",
                actor="system",
                message_id=target.message_id,
            )
        return outcome

    @staticmethod
    def _emit(
        conn: Connection, target: _Target, type_: ev.EventType, data: dict[str, Any], now: datetime
    ) -> None:
        ev.emit(
            conn,
            tenant_id=target.tenant_id,
            message_id=target.message_id,
            type_=type_,
            recipient_id=target.id,
            recipient=target.address,
            data=data,
            at=now,
        )


def _block_for(report: reports.Dsn, address: str) -> reports.DeliveryStatus | None:
    """The per-recipient block about ``address``; the only block when there is one.

    With several blocks and none naming the address (an alias or list our recipient
    expanded to), nothing is attributed: one member's failure is not our recipient's.
    """
    address = address.lower()
    for block in report.recipients:
        if address in (block.final_recipient, block.original_recipient):
            return block
    if len(report.recipients) == 1:
        return report.recipients[0]
    return None
