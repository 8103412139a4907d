"""The shapes the Sealmail API sends and accepts, as typed Python values.

Size: one file on purpose: the client mirrors every API route, and these are the shapes
of all of them in one place, so a user imports every type from one module.

Responses are ``TypedDict``s: they are the JSON objects exactly as the server sends them
(timestamps stay ISO 8601 strings), so a field the server adds later is still there at run
time.  Requests with many fields are frozen dataclasses that know their JSON form; the
client base64-encodes bytes for them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Literal, TypedDict


class _Unset(Enum):
    UNSET = "UNSET"


UNSET = _Unset.UNSET
"""Marks a partial-update argument as "leave unchanged", as distinct from ``None`` (clear)."""
Unset = Literal[_Unset.UNSET]

Stream = Literal["transactional", "phi", "broadcast"]
TlsPolicyName = Literal["opportunistic", "require", "require_verified", "dane"]


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"

    def to_json(self) -> dict[str, str]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "content": base64.b64encode(self.content).decode("ascii"),
        }


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to compose and send (``POST /v1/messages``).

    Tags and metadata are stored in plaintext and sent in webhooks: they must not carry PHI.
    """

    from_: str
    to: Sequence[str] = ()
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    reply_to: Sequence[str] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: Sequence[Attachment] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    stream: Stream = "transactional"
    send_at: datetime | None = None
    expires_at: datetime | None = None
    tls_policy: TlsPolicyName | None = None
    # Deliver even to suppressed addresses: audited, refused on the broadcast stream.
    bypass_suppressions: bool = False
    # "secure": OpenPGP, S/MIME or the portal for every recipient, never TLS alone.
    protection: Literal["auto", "secure"] = "auto"
    # Per recipient address: how a portal notice reaches them (email | sms | both).
    notice: Mapping[str, Literal["email", "sms", "both"]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "from": self.from_,
            "to": list(self.to),
            "cc": list(self.cc),
            "bcc": list(self.bcc),
            "reply_to": list(self.reply_to),
            "subject": self.subject,
            "attachments": [a.to_json() for a in self.attachments],
            "headers": dict(self.headers),
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "stream": self.stream,
        }
        optional = {
            "text": self.text,
            "html": self.html,
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "tls_policy": self.tls_policy,
            "bypass_suppressions": True if self.bypass_suppressions else None,
            "protection": self.protection if self.protection != "auto" else None,
            "notice": dict(self.notice) or None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A complete RFC 5322 message with its SMTP envelope (``POST /v1/messages/raw``)."""

    mail_from: str
    rcpt_to: Sequence[str]
    message: bytes
    tags: Sequence[str] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    stream: Stream = "transactional"
    send_at: datetime | None = None
    expires_at: datetime | None = None
    tls_policy: TlsPolicyName | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "envelope": {"mail_from": self.mail_from, "rcpt_to": list(self.rcpt_to)},
            "message": base64.b64encode(self.message).decode("ascii"),
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "stream": self.stream,
        }
        optional = {
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "tls_policy": self.tls_policy,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One message of ``send_batch`` rendered from a template.

    With ``template``, subject/html/text come from the stored template (leave them empty
    in ``message``); with only ``template_data``, the message's own subject/html/text are
    rendered as a template.  Plain ``OutgoingMessage`` items need no wrapper.
    """

    message: OutgoingMessage
    template: str | None = None
    template_version: int | None = None
    template_data: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body = self.message.to_json()
        if self.template is not None:
            body["template"] = self.template
        if self.template_version is not None:
            body["template_version"] = self.template_version
        if self.template_data is not None:
            body["template_data"] = dict(self.template_data)
        return body


@dataclass(frozen=True, slots=True)
class BulkRecipient:
    """One recipient of a bulk send; ``template_data`` overrides the shared data."""

    to: str
    template_data: Mapping[str, Any] = field(default_factory=dict)
    # Stored in plaintext and sent in webhooks: no PHI.
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"to": self.to, "template_data": dict(self.template_data), "metadata": dict(self.metadata)}


@dataclass(frozen=True, slots=True)
class BulkMessage:
    """One template (stored ``template``, or inline subject/html/text) sent to many
    recipients (``POST /v1/messages/bulk``), each as its own message."""

    from_: str
    recipients: Sequence[BulkRecipient]
    template: str | None = None
    template_version: int | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    template_data: Mapping[str, Any] = field(default_factory=dict)
    reply_to: Sequence[str] = ()
    attachments: Sequence[Attachment] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    stream: Stream = "transactional"
    send_at: datetime | None = None
    expires_at: datetime | None = None
    tls_policy: TlsPolicyName | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "from": self.from_,
            "recipients": [r.to_json() for r in self.recipients],
            "template_data": dict(self.template_data),
            "reply_to": list(self.reply_to),
            "attachments": [a.to_json() for a in self.attachments],
            "headers": dict(self.headers),
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "stream": self.stream,
        }
        optional = {
            "template": self.template,
            "template_version": self.template_version,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "tls_policy": self.tls_policy,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


# -- messages and events ----------------------------------------------------------------------


class AcceptedRecipient(TypedDict):
    id: str
    email: str
    status: str  # "queued", or "rejected" when the address is suppressed


class Accepted(TypedDict):
    id: str
    status: str
    stream: str
    message_id_header: str
    recipients: list[AcceptedRecipient]
    replayed: bool
    """Set by the client: true when the server answered from an earlier idempotent request."""


class Attempt(TypedDict):
    id: str
    started_at: str | None
    finished_at: str | None
    status: str
    reason: str | None
    detail: str | None
    mx_host: str | None
    mx_ip: str | None
    tls: dict[str, Any]  # version, cipher, verified, verified_by, certificate_sha256
    smtp: dict[str, Any]
    key: dict[str, Any] | None  # fingerprint, source: the recipient key a PGP/S/MIME copy used


class RecipientState(TypedDict):
    id: str
    email: str
    kind: str
    status: str
    attempt_count: int
    next_attempt_at: str | None
    last_reason: str | None
    last_detail: str | None
    updated_at: str | None


class RecipientDetail(RecipientState):
    method: str | None
    method_reason: str | None
    portal_opens: int
    attempts: list[Attempt]


MessageMeta = TypedDict(
    "MessageMeta",
    {
        "id": str,
        "stream": str,
        "source": str,
        "from": str,
        "mail_from": str,
        "message_id_header": str,
        "size": int,
        "tls_policy": str | None,
        "tags": list[str],
        "metadata": dict[str, str],
        "status": str,
        "send_at": str | None,
        "expires_at": str | None,
        "created_at": str | None,
    },
)


class MessageSummary(MessageMeta):
    recipient_status: dict[str, int]


class MessageDetail(MessageMeta):
    recipients: list[RecipientDetail]


class QuarantinedMessage(MessageMeta):
    dlp: dict[str, Any]


MessageContent = TypedDict(
    "MessageContent",
    {
        "id": str,
        "subject": str,
        "from": str,
        "to": list[str],
        "cc": list[str],
        "text": str | None,
        "html": str | None,
        "attachments": list[dict[str, Any]],
    },
)


class CancelResult(TypedDict):
    id: str
    cancelled: list[str]


class ReleaseResult(TypedDict):
    id: str
    released: list[str]


class Event(TypedDict):
    id: str
    type: str
    message_id: str
    recipient_id: str | None
    recipient: str | None
    sequence: int
    created_at: str
    data: dict[str, Any]


class CapturedMessage(TypedDict):
    id: str
    message_id: str | None
    received_at: str
    mail_from: str
    rcpt_to: list[str]
    tls_version: str | None
    size: int
    data: str


# -- administration ---------------------------------------------------------------------------


class Tenant(TypedDict):
    id: str
    name: str
    settings: dict[str, Any]


class TenantSettings(TypedDict):
    settings: dict[str, Any]


class DnsRecord(TypedDict):
    type: str
    name: str
    value: str


class Domain(TypedDict):
    name: str
    verified: bool
    verified_at: str | None
    verification: DnsRecord


class DkimRecord(DnsRecord):
    purpose: str


class DkimRecords(TypedDict):
    records: list[DkimRecord]


class DnsCheck(TypedDict):
    name: str
    purpose: str
    ok: bool
    detail: str


class DomainCheck(TypedDict):
    ok: bool
    checks: list[DnsCheck]


class ApiKey(TypedDict):
    id: str
    name: str
    scopes: list[str]
    created_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class NewApiKey(TypedDict):
    id: str
    key: str
    scopes: list[str]
    note: str


class SmtpCredential(TypedDict):
    id: str
    username: str
    stream: str
    created_at: str | None
    revoked_at: str | None


class NewSmtpCredential(TypedDict):
    id: str
    username: str
    password: str
    stream: str
    note: str


class RecipientKey(TypedDict):
    id: str
    kind: str
    address: str
    fingerprint: str
    source: str
    trusted: bool
    expires_at: str | None
    created_at: str | None
    updated_at: str | None


class RecipientKeyWithData(RecipientKey):
    key: str


class ArchiveKey(TypedDict):
    fingerprint: str
    certificate: str


# -- webhooks ---------------------------------------------------------------------------------

WebhookPayload = Literal["thin", "full"]


class WebhookEndpoint(TypedDict):
    id: str
    url: str
    description: str
    event_types: list[str]
    streams: list[str]
    payload: str
    status: str
    disabled_reason: str | None
    consecutive_failures: int
    failing_since: str | None
    last_success_at: str | None
    previous_secret_expires_at: str | None
    created_at: str | None
    updated_at: str | None


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str
    note: str


class WebhookTestResult(TypedDict):
    delivery_id: str
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int | None


class WebhookDelivery(TypedDict):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    webhook_id: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str | None
    log: list[dict[str, Any]]


class ReplayQueued(TypedDict):
    queued: int


# -- portal -----------------------------------------------------------------------------------


class PortalNotice(TypedDict):
    channel: str
    required_tls: str | None
    tls_version: str | None
    verified_by: str | None
    meets_required: bool


class PortalHold(TypedDict):
    id: str
    recipient_id: str
    email: str
    state: str
    created_at: str | None
    expires_at: str | None
    notified_at: str | None
    viewed_at: str | None
    recalled_at: str | None
    requires_passphrase: bool
    content_destroyed: bool
    notice: PortalNotice | None


class PortalStatus(TypedDict):
    message_id: str
    requires_passphrase: bool
    expires_at: str | None
    recalled_at: str | None
    shredded_at: str | None
    recipients: list[PortalHold]


class PortalRecall(PortalStatus):
    recalled: int
    shredded: bool
    cancelled: int  # recipients not yet sent to, cancelled by the recall


# -- suppressions -----------------------------------------------------------------------------

SuppressionStream = Literal["*", "transactional", "phi", "broadcast"]


class Suppression(TypedDict):
    id: str
    address: str
    stream: str
    reason: str
    source: str
    message_id: str | None
    created_by: str
    created_at: str
    updated_at: str
    expires_at: str | None
    active: bool


# -- templates, batch and bulk ----------------------------------------------------------------


class Template(TypedDict):
    name: str
    version: int
    subject: str
    html: str | None
    text: str | None
    created_at: str
    created_by: str


class TemplateWithVersions(Template):
    versions: list[int]


class TemplatePreview(TypedDict):
    name: str
    version: int
    subject: str
    html: str | None
    text: str | None


class _BatchItemResultBase(TypedDict):
    index: int
    status: int
    outcome: str  # "accepted" or "error"


class BatchItemResult(_BatchItemResultBase, total=False):
    # Only the fields of the item's outcome are present.
    replayed: bool
    message: Accepted
    problem: dict[str, Any]


class BatchResult(TypedDict):
    accepted: int
    failed: int
    data: list[BatchItemResult]


class BulkTemplate(TypedDict):
    name: str
    version: int | None


class BulkError(TypedDict):
    index: int
    field: str
    message: str


class BulkJob(TypedDict):
    id: str
    status: str  # processing, completed or failed
    total: int
    accepted: int
    failed: int
    template: BulkTemplate | None
    created_at: str
    finished_at: str | None
    errors: list[BulkError]
    next_cursor: str | None


# -- files ------------------------------------------------------------------------------------


class FileInfo(TypedDict):
    id: str
    status: str
    filename: str | None
    content_type: str | None
    size: int | None
    sha256: str | None
    chunk_size: int | None
    chunks: int | None
    message_id: str | None
    created_at: str | None
    expires_at: str | None
    deleted_at: str | None


class FileSent(TypedDict):
    id: str
    status: str
    stream: str
    message_id_header: str
    recipients: list[AcceptedRecipient]
    file_id: str
    expires_at: str | None


class FileDeleted(TypedDict):
    id: str
    status: str
    blobs_deleted: int
