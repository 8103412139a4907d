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
