"""What a composed message is made of, as the services take it — not the HTTP bodies.

``compose`` reads these fields; the API's pydantic bodies (``messages.schemas``) have the
same fields and satisfy the protocols as they are, so no door converts anything.  Code that
builds or changes a message itself (templates: one message per recipient) uses the frozen
``MessageSpec``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sealmail.domain.secureline import Protection
from sealmail.domain.tls_policy import Stream, TlsPolicy


class AttachmentFields(Protocol):
    @property
    def filename(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def content(self) -> str: ...  # base64; compose decodes and checks it


class _Labels(Protocol):
    """The fields every submitted message carries besides its content."""

    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def metadata(self) -> Mapping[str, str]: ...
    @property
    def stream(self) -> Stream: ...
    @property
    def send_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def tls_policy(self) -> TlsPolicy | None: ...
    @property
    def bypass_suppressions(self) -> bool: ...
    @property
    def protection(self) -> Protection: ...  # "secure": encryption or the portal, never TLS alone


class MessageFields(_Labels, Protocol):
    """A message to compose: ``POST /v1/messages``'s fields."""

    @property
    def from_(self) -> str: ...
    @property
    def to(self) -> Sequence[str]: ...
    @property
    def cc(self) -> Sequence[str]: ...
    @property
    def bcc(self) -> Sequence[str]: ...
    @property
    def reply_to(self) -> Sequence[str]: ...
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str | None: ...
    @property
    def html(self) -> str | None: ...
    @property
    def attachments(self) -> Sequence[AttachmentFields]: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


class EnvelopeFields(Protocol):
    @property
    def mail_from(self) -> str: ...
    @property
    def rcpt_to(self) -> Sequence[str]: ...


class RawFields(_Labels, Protocol):
    """A finished RFC 5322 message (base64) and its envelope: ``POST /v1/messages/raw``."""

    @property
    def envelope(self) -> EnvelopeFields: ...
    @property
    def message(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AttachmentSpec:
    filename: str
    content_type: str
    content: str


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A ``MessageFields`` the services can build and change (``dataclasses.replace``)."""

    from_: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[AttachmentSpec, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    stream: Stream = Stream.TRANSACTIONAL
    send_at: datetime | None = None
    expires_at: datetime | None = None
    tls_policy: TlsPolicy | None = None
    bypass_suppressions: bool = False
    protection: Protection = Protection.AUTO

    @classmethod
    def of(cls, m: MessageFields) -> MessageSpec:
        """The same message as a ``MessageSpec`` (itself when it already is one)."""
        if isinstance(m, MessageSpec):
            return m
        return cls(
            from_=m.from_,
            to=tuple(m.to),
            cc=tuple(m.cc),
            bcc=tuple(m.bcc),
            reply_to=tuple(m.reply_to),
            subject=m.subject,
            text=m.text,
            html=m.html,
            attachments=tuple(AttachmentSpec(a.filename, a.content_type, a.content) for a in m.attachments),
            headers=dict(m.headers),
            tags=tuple(m.tags),
            metadata=dict(m.metadata),
            stream=m.stream,
            send_at=m.send_at,
            expires_at=m.expires_at,
            tls_policy=m.tls_policy,
            bypass_suppressions=m.bypass_suppressions,
            protection=m.protection,
        )
