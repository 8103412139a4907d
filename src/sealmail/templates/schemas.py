"""Request and response bodies of the templates, batch and bulk endpoints.

Template *variables* (``template_data``) may be PHI: they are used to render and then
live only inside each message's encrypted content; they are never stored on their own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sealmail.domain.tls_policy import Stream, TlsPolicy
from sealmail.messages.outgoing import AttachmentSpec, MessageSpec
from sealmail.messages.schemas import AcceptedOut, AttachmentIn, MessageIn
from sealmail.templates.states import BulkStatus
from sealmail.web.models import Instant, Out, Problem

MAX_BATCH = 500
MAX_BULK_RECIPIENTS = 10_000
# Template sources, not rendered output: a template may hold loops that expand later.
MAX_SOURCE_CHARS = 1_000_000


class TemplateContentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=4000, description="Jinja2; rendered without escaping.")
    html: str | None = Field(
        None, max_length=MAX_SOURCE_CHARS, description="Jinja2, autoescaped; <style> rules are inlined."
    )
    text: str | None = Field(
        None, max_length=MAX_SOURCE_CHARS, description="Jinja2; generated from the HTML when absent."
    )


class TemplateIn(TemplateContentIn):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_data: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Defaults to the active (newest) version."
    )


class BatchItemIn(MessageIn):
    """One message of a batch: a ``POST /v1/messages`` body, optionally from a template.

    With ``template``, subject/html/text come from the stored template; with
    ``template_data`` but no ``template``, the inline subject/html/text are rendered as a
    template; with neither, the message is sent as given.
    """

    template: str | None = Field(None, max_length=100)
    template_version: int | None = Field(None, ge=1, le=2**31 - 1)
    template_data: dict[str, Any] | None = None


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one (``BatchItemIn``) so a malformed item is that item's
    # error, not a 422 for the whole batch.
    messages: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Up to 500 `POST /v1/messages` bodies, each optionally with "
        "`template`, `template_version` and `template_data`.",
    )


class BulkRecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="`Name <addr@domain>` or `addr@domain`.")
    template_data: dict[str, Any] = Field(default_factory=dict, description="Overrides the shared data.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=10, description="No PHI.")


class BulkIn(BaseModel):
    """One template (stored, or inline subject/html/text) sent to many recipients."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    template: str | None = Field(None, max_length=100)
    template_version: int | None = Field(None, ge=1, le=2**31 - 1)
    subject: str | None = Field(None, max_length=4000)
    html: str | None = Field(None, max_length=MAX_SOURCE_CHARS)
    text: str | None = Field(None, max_length=MAX_SOURCE_CHARS)
    template_data: dict[str, Any] = Field(default_factory=dict, description="Shared by every recipient.")
    recipients: list[BulkRecipientIn] = Field(min_length=1, max_length=MAX_BULK_RECIPIENTS)
    reply_to: list[str] = Field(default_factory=list)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=10, description="No PHI.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=19, description="No PHI.")
    stream: Stream = Stream.TRANSACTIONAL
    send_at: Instant | None = None
    expires_at: Instant | None = None
    tls_policy: TlsPolicy | None = None

    def base_message(self) -> MessageSpec:
        """The per-message fields every recipient shares; ``to`` and content are filled in."""
        return MessageSpec(
            from_=self.from_,
            reply_to=tuple(self.reply_to),
            attachments=tuple(
                AttachmentSpec(a.filename, a.content_type, a.content) for a in self.attachments
            ),
            headers=self.headers,
            tags=tuple(self.tags),
            metadata=self.metadata,
            stream=self.stream,
            send_at=self.send_at,
            expires_at=self.expires_at,
            tls_policy=self.tls_policy,
        )


class TemplateOut(Out):
    name: str
    version: int
    subject: str
    html: str | None
    text: str | None
    created_at: str
    created_by: str


class TemplateWithVersionsOut(TemplateOut):
    versions: list[int]


class TemplateListOut(Out):
    data: list[TemplateOut]


class PreviewOut(Out):
    name: str
    version: int
    subject: str
    html: str | None
    text: str | None


class BatchItemOut(Out):
    index: int
    status: int = Field(description="202 when accepted, else the problem's status.")
    outcome: str = Field(description="accepted | error")
    replayed: bool | None = None
    message: AcceptedOut | None = None
    problem: Problem | None = None


class BatchOut(Out):
    accepted: int
    failed: int
    data: list[BatchItemOut]


class BulkTemplateOut(Out):
    name: str
    version: int | None


class BulkErrorOut(Out):
    index: int
    field: str
    message: str


class BulkJobOut(Out):
    id: str
    status: BulkStatus
    total: int
    accepted: int
    failed: int
    template: BulkTemplateOut | None
    created_at: str
    finished_at: str | None
    errors: list[BulkErrorOut]
    next_cursor: str | None
