"""A message as services return it: typed results built from its rows (metadata, each
recipient's deliveries and attempts, quarantine findings), for ``Reading`` and ``Messages``.
The JSON the API sends is shaped from these in ``messages/schemas.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sealmail.domain.statuses import WAITING


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A message's metadata (plaintext, searchable): everything but its content."""

    id: str
    stream: str
    source: str
    from_: str
    mail_from: str
    message_id_header: str
    size: int
    tls_policy: str | None
    protection: str
    tags: tuple[str, ...]
    # The submitter's own key/value pairs, stored as given (no PHI, open by design).
    metadata: dict[str, Any]
    # In a search or a message's detail: aggregated from its recipients; else as stored.
    status: str
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptTls:
    version: str | None
    cipher: str | None
    verified: bool | None
    verified_by: str | None  # none | pkix | mta-sts | dane
    certificate_sha256: str | None  # the server's certificate (DER), hex; None without TLS


@dataclass(frozen=True, slots=True)
class AttemptSmtp:
    code: int | None
    enhanced: str | None
    reply: str | None


@dataclass(frozen=True, slots=True)
class AttemptKey:
    """The recipient key an OpenPGP or S/MIME copy was encrypted to, and where it came from."""

    fingerprint: str
    source: str | None  # uploaded | wkd | keyserver | autocrypt | harvested


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One delivery attempt to one recipient."""

    id: str
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    reason: str | None
    detail: str | None
    mx_host: str | None
    mx_ip: str | None
    tls: AttemptTls
    smtp: AttemptSmtp
    key: AttemptKey | None  # None unless the copy was encrypted to a recipient key


@dataclass(frozen=True, slots=True)
class RecipientDelivery:
    """A recipient of a message and its attempts, oldest first."""

    id: str
    email: str
    kind: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None  # only while the recipient waits for a retry
    last_reason: str | None
    last_detail: str | None
    method: str | None  # SecureLine's method: pgp | smime | tls | portal | plain
    method_reason: str | None  # why SecureLine chose it (names the key and its source)
    updated_at: datetime | None
    portal_opens: int  # how often the recipient opened the message in the portal
    attempts: tuple[AttemptInfo, ...]


@dataclass(frozen=True, slots=True)
class MessageDetail(MessageInfo):
    """One message with each recipient's delivery history."""

    recipients: tuple[RecipientDelivery, ...]


@dataclass(frozen=True, slots=True)
class MessageSummary(MessageInfo):
    """A message in a search: its recipients counted per status."""

    recipient_status: dict[str, int]


@dataclass(frozen=True, slots=True)
class DlpHold:
    """Why the DLP rules hold a message."""

    action: str | None
    # Each finding as screening stored it (detector, location, ...): stored JSON.
    findings: tuple[dict[str, Any], ...] | None


@dataclass(frozen=True, slots=True)
class HeldMessage(MessageInfo):
    """A message in quarantine, with the findings that hold it."""

    dlp: DlpHold


def held_message(m: Any) -> HeldMessage:
    """A quarantined messages row (``META`` columns) as a ``HeldMessage``."""
    return HeldMessage(**_message_fields(m), dlp=DlpHold(m["dlp_action"], _tuple_or_none(m["dlp_findings"])))


def _tuple_or_none(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _message_fields(m: Any, status: str | None = None) -> dict[str, Any]:
    """A messages row's ``MessageInfo`` fields, by name (``status``: as stored unless given)."""
    return {
        "id": m["id"],
        "stream": m["stream"],
        "source": m["source"],
        "from_": m["header_from"],
        "mail_from": m["mail_from"],
        "message_id_header": m["message_id_header"],
        "size": m["size"],
        "tls_policy": m["tls_policy"],
        "protection": m["protection"],
        "tags": tuple(m["tags"]),
        "metadata": m["metadata"],
        "status": m["status"] if status is None else status,
        "send_at": m["send_at"],
        "expires_at": m["expires_at"],
        "created_at": m["created_at"],
    }


def message_detail(m: Any, status: str, recipients: tuple[RecipientDelivery, ...]) -> MessageDetail:
    """A messages row (``META`` columns) with its recipients; ``status`` aggregated from them."""
    return MessageDetail(**_message_fields(m, status), recipients=recipients)


def message_summary(m: Any, status: str, recipient_status: dict[str, int]) -> MessageSummary:
    """A messages row in a search, its recipients counted per status."""
    return MessageSummary(**_message_fields(m, status), recipient_status=recipient_status)


def recipient_delivery(r: Any, tries: tuple[AttemptInfo, ...], portal_opens: int) -> RecipientDelivery:
    """A recipients row with its attempts and portal opens."""
    return RecipientDelivery(
        id=r["id"],
        email=r["address"],
        kind=r["kind"],
        status=r["status"],
        attempt_count=r["attempts"],
        next_attempt_at=r["next_attempt_at"] if r["status"] in WAITING else None,
        last_reason=r["last_reason"],
        last_detail=r["last_detail"],
        method=r["method"],
        method_reason=r["method_reason"],
        updated_at=r["updated_at"],
        portal_opens=portal_opens,
        attempts=tries,
    )


def attempt_info(a: Any) -> AttemptInfo:
    """An attempts row."""
    return AttemptInfo(
        id=a["id"],
        started_at=a["started_at"],
        finished_at=a["finished_at"],
        status=a["status"],
        reason=a["reason"],
        detail=a["detail"],
        mx_host=a["mx_host"],
        mx_ip=a["mx_ip"],
        tls=AttemptTls(
            a["tls_version"], a["tls_cipher"], a["tls_verified"], a["verified_by"], a["peer_cert_sha256"]
        ),
        smtp=AttemptSmtp(a["smtp_code"], a["enhanced_code"], a["reply"]),
        key=AttemptKey(a["key_fingerprint"], a["key_source"]) if a["key_fingerprint"] else None,
    )
