"""Response bodies of the webhook, portal, file and template routes (the OpenAPI document).

Like the management bodies in ``schemas``: ``extra="allow"``, so a field a service adds
later still reaches the client, while every field listed here is promised.  Timestamps
the services hand over as ``datetime`` are typed so (serialized as ISO 8601); those they
hand over already formatted stay strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sealmail.intake.api.schemas import AcceptedOut, Problem


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- webhooks -----------------------------------------------------------------------------------


class WebhookEndpointOut(_Out):
    id: str
    url: str
    description: str
    event_types: list[str]
    streams: list[str]
    payload: str = Field(description="thin | full")
    status: str = Field(description="active | disabled")
    disabled_reason: str | None
    consecutive_failures: int
    failing_since: str | None
    last_success_at: str | None
    previous_secret_expires_at: str | None
    created_at: str | None
    updated_at: str | None


class WebhookEndpointListOut(_Out):
    data: list[WebhookEndpointOut]


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    secret: str = Field(description="The signing secret; shown once.")
    note: str


class WebhookTestOut(_Out):
    delivery_id: str
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int | None


class WebhookAttemptOut(_Out):
    at: str | None
    status_code: int | None
    duration_ms: int
    outcome: str = Field(description="delivered | retry | failed | gone")
    error: str | None


class WebhookDeliveryOut(_Out):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    webhook_id: str
    status: str = Field(description="pending | delivered | failed | dropped")
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str | None
    log: list[WebhookAttemptOut]


class WebhookDeliveryPageOut(_Out):
    data: list[WebhookDeliveryOut]
    next_before: str | None = Field(description="Pass as `before` for the next (older) page.")


class ReplayQueuedOut(_Out):
    queued: int


# -- portal ---------------------------------------------------------------------------------------


class PortalNoticeOut(_Out):
    channel: str = Field(description="What carried the notice: `email`.")
    required_tls: str | None = Field(description="The message's required TLS level.")
    tls_version: str | None = Field(description="TLS version of the delivered notice; null = plaintext.")
    verified_by: str | None = Field(description="`pkix`, `dane`, `mta-sts` or `none`.")
    meets_required: bool = Field(
        description="False: the notice went out below the required level, so emailed sign-in codes "
        "must meet the level (or another factor is needed)."
    )


class PortalHoldOut(_Out):
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
    notice: PortalNoticeOut | None = Field(
        None, description="How the notice carrying the link travelled; null until one was delivered."
    )


class PortalStatusOut(_Out):
    message_id: str
    requires_passphrase: bool
    expires_at: str | None
    recalled_at: str | None
    shredded_at: str | None
    recipients: list[PortalHoldOut]


class PortalRecallOut(PortalStatusOut):
    recalled: int = Field(description="How many portal recipients lost access now.")
    shredded: bool = Field(description="Whether the content was destroyed at once.")


# -- files ----------------------------------------------------------------------------------------


class FileOut(_Out):
    id: str
    status: str
    filename: str | None = Field(description="Decrypted for the sender; null once shredded.")
    content_type: str | None
    size: int | None
    sha256: str | None
    chunk_size: int | None
    chunks: int | None
    message_id: str | None
    created_at: datetime | None
    expires_at: datetime | None
    deleted_at: datetime | None


class FileSentOut(AcceptedOut):
    model_config = ConfigDict(extra="allow")

    file_id: str
    expires_at: datetime | None


class FileDeletedOut(_Out):
    id: str
    status: str
    blobs_deleted: int


# -- templates, batch and bulk ----------------------------------------------------------------------


class TemplateOut(_Out):
    name: str
    version: int
    subject: str
    html: str | None
    text: str | None
    created_at: str
    created_by: str


class TemplateWithVersionsOut(TemplateOut):
    versions: list[int]


class TemplateListOut(_Out):
    data: list[TemplateOut]


class PreviewOut(_Out):
    name: str
    version: int
    subject: str
    html: str | None
    text: str | None


class BatchItemOut(_Out):
    index: int
    status: int = Field(description="202 when accepted, else the problem's status.")
    outcome: str = Field(description="accepted | error")
    replayed: bool | None = None
    message: AcceptedOut | None = None
    problem: Problem | None = None


class BatchOut(_Out):
    accepted: int
    failed: int
    data: list[BatchItemOut]


class BulkTemplateOut(_Out):
    name: str
    version: int | None


class BulkErrorOut(_Out):
    index: int
    field: str
    message: str


class BulkJobOut(_Out):
    id: str
    status: str = Field(description="processing | completed | failed")
    total: int
    accepted: int
    failed: int
    template: BulkTemplateOut | None
    created_at: str
    finished_at: str | None
    errors: list[BulkErrorOut]
    next_cursor: str | None


def binary(description: str) -> dict[str, Any]:
    """One entry of ``responses=`` for a body of bytes, not JSON (a download)."""
    return {
        "description": description,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
