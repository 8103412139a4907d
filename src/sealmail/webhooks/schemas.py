"""Response bodies of the webhook routes."""

from __future__ import annotations

from pydantic import Field

from sealmail.web.models import Out
from sealmail.webhooks.states import DeliveryStatus, EndpointStatus


class WebhookEndpointOut(Out):
    id: str
    url: str
    description: str
    event_types: list[str]
    streams: list[str]
    payload: str = Field(description="thin | full")
    status: EndpointStatus
    disabled_reason: str | None
    consecutive_failures: int
    failing_since: str | None
    last_success_at: str | None
    previous_secret_expires_at: str | None
    created_at: str | None
    updated_at: str | None


class WebhookEndpointListOut(Out):
    data: list[WebhookEndpointOut]


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    secret: str = Field(description="The signing secret; shown once.")
    note: str


class WebhookTestOut(Out):
    delivery_id: str
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int | None


class WebhookAttemptOut(Out):
    at: str | None
    status_code: int | None
    duration_ms: int
    outcome: str = Field(description="delivered | retry | failed | gone")
    error: str | None


class WebhookDeliveryOut(Out):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    webhook_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str | None
    log: list[WebhookAttemptOut]


class WebhookDeliveryPageOut(Out):
    data: list[WebhookDeliveryOut]
    next_before: str | None = Field(description="Pass as `before` for the next (older) page.")


class ReplayQueuedOut(Out):
    queued: int
