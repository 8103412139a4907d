"""The steps of accepting a submission that need no storage: validation, the rows one
accepted message becomes, and the typed result.

``Messages.submit`` runs them in order — validate, screen (DLP), check the sender, seal,
build rows, commit — and hands back an ``Accepted`` that each door shapes for its client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.statuses import MessageStatus, RecipientStatus
from sealmail.domain.tls_policy import STREAM_MINIMUM, Stream, TlsRequirement
from sealmail.errors import ValidationFailed
from sealmail.ids import new_id
from sealmail.messages.group_commit import Pending
from sealmail.messages.submission import Idempotency, Screening, Submission
from sealmail.store import events as ev
from sealmail.tenancy.service import Principal


@dataclass(frozen=True, slots=True)
class AcceptedRecipient:
    id: str
    email: str
    status: RecipientStatus


@dataclass(frozen=True, slots=True)
class Accepted:
    """What accepting a message stored: its id, state and recipients (after suppressions)."""

    id: str
    status: MessageStatus
    stream: str
    message_id_header: str
    recipients: tuple[AcceptedRecipient, ...]

    @classmethod
    def from_record(cls, body: dict[str, Any]) -> Accepted:
        """From the JSON an idempotency key keeps (an idempotent replay reads it back)."""
        return cls(
            id=str(body["id"]),
            status=MessageStatus(body["status"]),
            stream=str(body["stream"]),
            message_id_header=str(body["message_id_header"]),
            recipients=tuple(
                AcceptedRecipient(str(r["id"]), str(r["email"]), RecipientStatus(r["status"]))
                for r in body["recipients"]
            ),
        )

    def to_record(self) -> dict[str, Any]:
        """The JSON ``idempotency_keys.response`` keeps; ``from_record`` reads it back.

        A storage format: the API shapes its own body (``messages.schemas.AcceptedOut``).
        """
        return {
            "id": self.id,
            "status": str(self.status),
            "stream": self.stream,
            "message_id_header": self.message_id_header,
            "recipients": [{"id": r.id, "email": r.email, "status": str(r.status)} for r in self.recipients],
        }


def validate(sub: Submission, *, system: bool, broadcast_refusal: str | None) -> None:
    """Refuse what no screening or sender check could make acceptable."""
    minimum = STREAM_MINIMUM[sub.stream]
    if sub.tls_policy is not None and sub.tls_policy.rank < minimum.rank:
        message = f"{sub.tls_policy} is not allowed on the {sub.stream} stream; use {minimum} or stronger"
        raise ValidationFailed([{"field": "tls_policy", "message": message}])
    if not sub.recipients:
        raise ValidationFailed([{"field": "to", "message": "at least one recipient is required"}])
    if broadcast_refusal and sub.stream == Stream.BROADCAST and not system:
        raise ValidationFailed([{"field": "stream", "message": broadcast_refusal}])
    if sub.bypass_suppressions and sub.stream == Stream.BROADCAST:
        message = "is for critical transactional or phi mail, not the broadcast stream"
        raise ValidationFailed([{"field": "bypass_suppressions", "message": message}])


@dataclass(frozen=True, slots=True)
class Sealed:
    """The message's content under its data key, wrapped by a tenant key."""

    key_id: str
    wrapped: bytes
    blob: bytes


def recipient_rows(
    who: Principal, message_id: str, sub: Submission, held: bool, now: datetime
) -> list[dict[str, Any]]:
    """One row per distinct address: one delivery even when listed in to and cc."""
    due = sub.send_at if sub.send_at and sub.send_at > now else now
    status = RecipientStatus.QUARANTINED if held else RecipientStatus.QUEUED
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rcpt in sub.recipients:
        norm = rcpt.address.lower()
        if norm in seen:
            continue
        seen.add(norm)
        rows.append(
            {
                "id": new_id("rcp"),
                "tenant_id": who.tenant_id,
                "message_id": message_id,
                "address": rcpt.address,
                "domain": rcpt.ascii_domain,
                "kind": rcpt.kind,
                "notice": sub.notices.get(norm),
                "status": status,
                "next_attempt_at": due,
                "attempts": 0,
                "updated_at": now,
            }
        )
    return rows


def message_row(
    who: Principal,
    message_id: str,
    sub: Submission,
    screening: Screening,
    sealed: Sealed,
    events: int,
    now: datetime,
) -> dict[str, Any]:
    held = screening.action == "quarantine"
    return {
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
        "tls_required": str(sub.tls_required) if sub.tls_required else None,
        "tags": list(sub.tags),
        "metadata": dict(sub.metadata),
        "status": MessageStatus.QUARANTINED if held else MessageStatus.QUEUED,
        "dlp_action": screening.action,
        "protection": str(sub.protection),
        "dlp_findings": list(screening.findings) or None,
        "send_at": sub.send_at,
        "expires_at": sub.expires_at,
        "created_at": now,
        "event_seq": events,  # the events below are numbered 1..events
        "tenant_key_id": sealed.key_id,
        "wrapped_data_key": sealed.wrapped,
        "content": sealed.blob,
    }


def accepted_events(
    who: Principal,
    message_id: str,
    sub: Submission,
    screening: Screening,
    rcpts: list[dict[str, Any]],
    now: datetime,
) -> list[ev.NewEvent]:
    """``message.accepted`` per recipient, then ``message.quarantined`` if DLP holds it."""
    data: dict[str, Any] = {"stream": str(sub.stream), "source": sub.source}
    if screening.findings:
        data["dlp"] = {"action": screening.action, "findings": list(screening.findings)}
    out = [
        ev.NewEvent(who.tenant_id, message_id, ev.EventType.ACCEPTED, r["id"], r["address"], dict(data), now)
        for r in rcpts
    ]
    if screening.action == "quarantine":
        held = {"reason": screening.reason}
        out += [
            ev.NewEvent(who.tenant_id, message_id, ev.EventType.QUARANTINED, r["id"], r["address"], held, now)
            for r in rcpts
        ]
    return out


def audit_entries(
    who: Principal, message_id: str, sub: Submission, screening: Screening, recipients: int
) -> list[audit.Entry]:
    entries: list[audit.Entry] = []
    actor, tenant = who.credential_id, who.tenant_id
    if screening.action == "quarantine":
        findings = {"findings": list(screening.findings)}
        entries.append(audit.Entry(AuditAction.MESSAGE_QUARANTINED, actor, tenant, message_id, findings))
    if sub.bypass_suppressions:
        entries.append(audit.Entry(AuditAction.SUPPRESSIONS_BYPASSED, actor, tenant, message_id))
    if sub.tls_required is TlsRequirement.NOT_REQUIRED:
        # RFC 8689 §5: the sender asked that TLS policies be ignored; whether delivery
        # honours it is decided (and recorded in the method reason) per recipient.
        relaxed = {"header": "TLS-Required: No", "stream": str(sub.stream)}
        entries.append(
            audit.Entry(AuditAction.MESSAGE_TLS_RELAXATION_REQUESTED, actor, tenant, message_id, relaxed)
        )
    facts = {"source": sub.source, "stream": str(sub.stream), "recipients": recipients, "size": len(sub.raw)}
    if sub.tls_required is not None:
        facts["tls_required"] = str(sub.tls_required)
    entries.append(audit.Entry(AuditAction.MESSAGE_ACCEPTED, actor, tenant, message_id, facts))
    return entries


def pending(
    who: Principal,
    sub: Submission,
    screening: Screening,
    sealed: Sealed,
    message_id: str,
    idem: Idempotency | None,
    now: datetime,
) -> Pending:
    """Every row of one accepted message, ready for a commit batch."""
    held = screening.action == "quarantine"
    rcpts = recipient_rows(who, message_id, sub, held, now)
    events = accepted_events(who, message_id, sub, screening, rcpts, now)
    response = Accepted(
        id=message_id,
        status=MessageStatus.QUARANTINED if held else MessageStatus.QUEUED,
        stream=str(sub.stream),
        message_id_header=sub.message_id_header,
        recipients=tuple(AcceptedRecipient(r["id"], r["address"], r["status"]) for r in rcpts),
    ).to_record()
    record = None
    if idem is not None:
        record = {
            "tenant_id": who.tenant_id,
            "key": idem.key,
            "request_hash": idem.request_hash,
            "response": response,  # completed by the commit (suppressed recipients)
            "created_at": now,
        }
    return Pending(
        message=message_row(who, message_id, sub, screening, sealed, len(events), now),
        recipients=rcpts,
        tags=[
            {"tenant_id": who.tenant_id, "tag": t, "message_id": message_id} for t in dict.fromkeys(sub.tags)
        ],
        events=events,
        audit=audit_entries(who, message_id, sub, screening, len(rcpts)),
        idempotency=record,
        response=response,
        bypass_suppressions=sub.bypass_suppressions,
    )
