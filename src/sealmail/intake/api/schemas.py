"""Request and response bodies of the REST API (the OpenAPI document is built from these).

Tags and metadata are stored in plaintext for search and are sent in webhooks: they must
not carry PHI (use opaque references such as an encounter id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sealmail.domain.tls_policy import Stream, TlsPolicy


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", pattern=r"^[\w.+-]+/[\w.+-]+$")
    content: str = Field(description="Base64-encoded bytes.")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", description="`Name <addr@domain>` or `addr@domain`.")
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: list[str] = Field(default_factory=list)
    subject: str = Field("", max_length=998)
    text: str | None = None
    html: str | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=10, description="No PHI.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=30, description="No PHI.")
    stream: Stream = Stream.TRANSACTIONAL
    send_at: datetime | None = None
    expires_at: datetime | None = None
    tls_policy: TlsPolicy | None = None


class EnvelopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mail_from: str
    rcpt_to: list[str] = Field(min_length=1)


class RawMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    envelope: EnvelopeIn
    message: str = Field(description="Base64-encoded RFC 5322 message.")
    tags: list[str] = Field(default_factory=list, max_length=10)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=30)
    stream: Stream = Stream.TRANSACTIONAL
    send_at: datetime | None = None
    expires_at: datetime | None = None
    tls_policy: TlsPolicy | None = None


class RecipientOut(BaseModel):
    id: str
    email: str


class AcceptedOut(BaseModel):
    id: str
    status: str
    stream: str
    message_id_header: str
    recipients: list[RecipientOut]


class PageOut(BaseModel):
    data: list[dict[str, Any]]
    next_cursor: str | None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None


# -- response bodies of the management routes -------------------------------------------------
# ``extra="allow"``: a field a service adds later still reaches the client (and the document
# keeps ``additionalProperties``), while every field listed here is promised.


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class TenantOut(_Out):
    id: str
    name: str
    settings: dict[str, Any] | None


class SettingsOut(_Out):
    settings: dict[str, Any] | None


class DnsRecordOut(_Out):
    type: str
    name: str
    value: str


class DomainOut(_Out):
    name: str
    verified: bool
    verified_at: str | None
    verification: DnsRecordOut


class DomainListOut(_Out):
    data: list[DomainOut]


class ApiKeyOut(_Out):
    id: str
    name: str
    scopes: list[str]
    created_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class ApiKeyListOut(_Out):
    data: list[ApiKeyOut]


class NewApiKeyOut(_Out):
    id: str
    key: str = Field(description="The secret; shown once.")
    scopes: list[str]
    note: str


class SmtpCredentialOut(_Out):
    id: str
    username: str
    stream: str
    created_at: str | None
    revoked_at: str | None


class SmtpCredentialListOut(_Out):
    data: list[SmtpCredentialOut]


class NewSmtpCredentialOut(_Out):
    id: str
    username: str
    password: str = Field(description="The secret; shown once.")
    stream: str
    note: str


class RecipientKeyOut(_Out):
    id: str
    kind: str
    address: str
    fingerprint: str
    source: str
    trusted: bool
    expires_at: str | None
    created_at: str | None
    updated_at: str | None


class RecipientKeyListOut(_Out):
    data: list[RecipientKeyOut]


class RecipientKeyWithDataOut(RecipientKeyOut):
    key: str = Field(description="Armored/PEM text, or base64 of binary data.")


class DkimRecordOut(DnsRecordOut):
    purpose: str


class DkimRecordsOut(_Out):
    records: list[DkimRecordOut]


class DnsCheckOut(_Out):
    name: str
    purpose: str
    ok: bool
    detail: str | None


class DomainCheckOut(_Out):
    ok: bool
    checks: list[DnsCheckOut]


class ArchiveKeyOut(_Out):
    fingerprint: str
    certificate: str


class SmimeIdentityOut(_Out):
    subject: str
    issuer: str
    fingerprint_sha256: str
    emails: list[str]
    not_after: str


class QuarantinePageOut(_Out):
    data: list[dict[str, Any]]
    next_cursor: str | None


class ReleasedOut(_Out):
    id: str
    released: list[str]


class CancelledOut(_Out):
    id: str
    cancelled: list[str]
