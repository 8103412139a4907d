"""Request and response bodies of the REST API (the OpenAPI document is built from these).

Tags and metadata are stored in plaintext for search and are sent in webhooks: they must
not carry PHI (use opaque references such as an encounter id).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sealmail.domain.page import Page
from sealmail.domain.secureline import Protection
from sealmail.domain.tls_policy import Stream, TlsPolicy
from sealmail.messages.accept import Accepted
from sealmail.messages.reading import EventPage, MessageContent
from sealmail.messages.service import Moved
from sealmail.messages.views import HeldMessage, MessageInfo, MessageSummary
from sealmail.web.models import Instant, as_json

PROTECTION_DOC = (
    '"auto" (default): SecureLine picks the strongest method each recipient can take under the '
    'tenant\'s policy (OpenPGP, S/MIME, verified TLS, portal). "secure": every recipient gets the '
    "message encrypted end to end (OpenPGP or S/MIME) or through the secure portal, never by TLS alone."
)


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
    send_at: Instant | None = None
    expires_at: Instant | None = None
    tls_policy: TlsPolicy | None = None
    bypass_suppressions: bool = Field(
        False,
        description="Deliver even to suppressed addresses; audited, and refused on the broadcast stream.",
    )
    protection: Protection = Field(Protection.AUTO, description=PROTECTION_DOC)
    notice: dict[str, Literal["email", "sms", "both"]] = Field(
        default_factory=dict,
        max_length=1000,
        description="Per recipient address: how a portal notice reaches them — `email`, `sms` (the "
        "PHI-free text alone) or `both`. SMS needs an SMS contact with that address and notice "
        "consent, else 422. Unlisted recipients follow their SMS contact's own choice. If consent is "
        "withdrawn before delivery, an `sms` recipient's notice goes by email and the trail says why.",
    )


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
    send_at: Instant | None = None
    expires_at: Instant | None = None
    tls_policy: TlsPolicy | None = None
    bypass_suppressions: bool = Field(
        False,
        description="Deliver even to suppressed addresses; audited, and refused on the broadcast stream.",
    )
    protection: Protection = Field(Protection.AUTO, description=PROTECTION_DOC)


class RecipientOut(BaseModel):
    # Open like the management bodies below: the batch route validates through this model,
    # and a field the service adds must not be dropped on the way out.
    model_config = ConfigDict(extra="allow")

    id: str
    email: str
    status: str | None = Field(None, description='"queued", or "rejected" when the address is suppressed.')


class AcceptedOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    status: str
    stream: str
    message_id_header: str
    recipients: list[RecipientOut]

    @classmethod
    def from_result(cls, result: Accepted) -> AcceptedOut:
        return cls(
            id=result.id,
            status=str(result.status),
            stream=result.stream,
            message_id_header=result.message_id_header,
            recipients=[
                RecipientOut(id=r.id, email=r.email, status=str(r.status)) for r in result.recipients
            ],
        )

    def body(self) -> dict[str, Any]:
        """The JSON body, for routes that answer with a ``JSONResponse`` (extra headers)."""
        return self.model_dump(mode="json")

    @staticmethod
    def body_of(result: Accepted) -> dict[str, Any]:
        """``from_result(result).body()`` without building the models: every accepted
        message answers with it, and validating our own values again cost more than the rest
        of the response (a test keeps the two equal)."""
        return {
            "id": result.id,
            "status": str(result.status),
            "stream": str(result.stream),
            "message_id_header": result.message_id_header,
            "recipients": [
                {"id": r.id, "email": r.email, "status": str(r.status)} for r in result.recipients
            ],
        }


def message_body(message: MessageInfo) -> dict[str, Any]:
    """A message's JSON body (``MessageOut``, or an item of a page): its fields in order,
    ``from_`` named ``from``, datetimes ISO 8601."""
    return {("from" if k == "from_" else k): v for k, v in as_json(message).items()}


def message_page(page: Page[MessageSummary] | Page[HeldMessage]) -> dict[str, Any]:
    """A page of messages as ``PageOut``/``QuarantinePageOut`` carry it."""
    return {"data": [message_body(m) for m in page.items], "next_cursor": page.next_cursor}


class PageOut(BaseModel):
    data: list[dict[str, Any]]
    next_cursor: str | None

    @classmethod
    def of(cls, page: EventPage) -> PageOut:
        return cls(data=list(page.data), next_cursor=page.next_cursor)


# -- response bodies of the management routes -------------------------------------------------
# ``extra="allow"``: a field a service adds later still reaches the client (and the document
# keeps ``additionalProperties``), while every field listed here is promised.


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class QuarantinePageOut(_Out):
    data: list[dict[str, Any]]
    next_cursor: str | None


class ReleasedOut(_Out):
    id: str
    released: list[str]

    @classmethod
    def from_result(cls, moved: Moved) -> ReleasedOut:
        return cls(id=moved.message_id, released=list(moved.recipient_ids))


class CancelledOut(_Out):
    id: str
    cancelled: list[str]

    @classmethod
    def from_result(cls, moved: Moved) -> CancelledOut:
        return cls(id=moved.message_id, cancelled=list(moved.recipient_ids))


# -- a message, its deliveries and its content ---------------------------------------------------


class AttemptTlsOut(_Out):
    version: str | None
    cipher: str | None
    verified: bool | None
    verified_by: str | None = Field(
        description="What vouched for the certificate: `none`, `pkix`, `mta-sts` or `dane`."
    )
    certificate_sha256: str | None = Field(
        None, description="SHA-256 of the server's certificate (DER, hex); null without TLS."
    )


class AttemptKeyOut(_Out):
    fingerprint: str = Field(description="The recipient key the OpenPGP or S/MIME copy was encrypted to.")
    source: str | None = Field(
        description="Where it came from: `uploaded`, `wkd`, `keyserver`, `autocrypt`, `harvested`."
    )


class AttemptSmtpOut(_Out):
    code: int | None
    enhanced: str | None
    reply: str | None


class AttemptOut(_Out):
    id: str
    started_at: str | None
    finished_at: str | None
    status: str
    reason: str | None
    detail: str | None
    mx_host: str | None
    mx_ip: str | None
    tls: AttemptTlsOut
    smtp: AttemptSmtpOut
    key: AttemptKeyOut | None = Field(
        None, description="Null unless the copy was encrypted to a recipient key."
    )


class RecipientDetailOut(_Out):
    id: str
    email: str
    kind: str = Field(description="to | cc | bcc | env")
    status: str
    attempt_count: int
    next_attempt_at: str | None
    last_reason: str | None
    last_detail: str | None
    method: str | None = Field(
        None, description="SecureLine's method: `pgp`, `smime`, `tls`, `portal` or `plain`."
    )
    method_reason: str | None = Field(
        None, description="Why SecureLine chose it (names the key and its source)."
    )
    portal_opens: int = Field(0, description="How often the recipient opened the message in the portal.")
    updated_at: str | None
    attempts: list[AttemptOut]


class MessageOut(_Out):
    """A message's metadata (plaintext, searchable) and each recipient's delivery history."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    stream: str
    source: str
    from_: str = Field(alias="from")
    mail_from: str
    message_id_header: str
    size: int
    tls_policy: str | None
    protection: str = Field(description=PROTECTION_DOC)
    tags: list[str]
    metadata: dict[str, Any]
    status: str = Field(
        description="From the recipients: queued (none tried yet), sending, delivered (every "
        "recipient), partially_delivered, failed (none delivered); or quarantined, rejected, cancelled."
    )
    send_at: str | None
    expires_at: str | None
    created_at: str | None
    recipients: list[RecipientDetailOut]


class AttachmentInfoOut(_Out):
    filename: str | None
    content_type: str
    size: int
    undisplayed: bool = Field(
        default=False, description="Content over a display limit (issue 11.2), offered as this attachment."
    )


class MessageContentOut(_Out):
    """Decrypted content; reading it is audited."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    subject: str
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    text: str | None
    html: str | None
    attachments: list[AttachmentInfoOut]
    problems: list[str] = Field(
        default_factory=list,
        description="Display limits the message went over (e.g. html_too_complex, too_many_parts); "
        "the content concerned is listed as an undisplayed attachment.",
    )

    @classmethod
    def from_result(cls, content: MessageContent) -> MessageContentOut:
        body = as_json(content)
        body["from"] = body.pop("from_")  # a Python keyword, the JSON's name
        return cls.model_validate(body)
