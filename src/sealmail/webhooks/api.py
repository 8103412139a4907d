"""Webhook endpoint management: CRUD, secret rotation, test-send, delivery log, replay.

All routes need the ``admin`` scope and are tenant-scoped: another tenant's endpoint or
delivery answers 404, exactly like one that does not exist.  The signing secret appears
once, in the response that creates (or rotates) it.
"""

# No ``from __future__ import annotations``: FastAPI resolves ``Admin`` (a local alias)
# from the live annotation objects.
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from sealmail.tenancy.service import Principal
from sealmail.webhooks.dispatcher import Dispatcher
from sealmail.webhooks.endpoints import EndpointChanges, EndpointSpec, WebhookEndpoints
from sealmail.webhooks.schemas import (
    ReplayQueuedOut,
    WebhookDeliveryOut,
    WebhookDeliveryPageOut,
    WebhookEndpointListOut,
    WebhookEndpointOut,
    WebhookEndpointWithSecretOut,
    WebhookTestOut,
)
from sealmail.webhooks.states import EndpointStatus

SHOWN_ONCE = "store this secret now; it is not shown again"


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="Receiver URL; https required for the phi stream.")
    event_types: list[str] = Field(
        default_factory=list, description='Types to send, e.g. "message.bounced" or "message.*"; [] = all.'
    )
    streams: list[str] = Field(default_factory=list, description="Streams to send; [] = all (incl. phi).")
    payload: Literal["thin", "full"] = Field(
        "thin", description="thin: ids, type, status only (no PHI); full: adds address, tags, transport."
    )
    description: str = Field("", max_length=200)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = None
    streams: list[str] | None = None
    payload: Literal["thin", "full"] | None = None
    description: str | None = Field(None, max_length=200)
    status: EndpointStatus | None = None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int = Field(
        86400, ge=0, le=7 * 86400, description="How long the old secret keeps signing too."
    )


def router(endpoints: WebhookEndpoints, new_dispatcher: Callable[[], Dispatcher], admin: Any) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["webhooks"])
    Admin = Annotated[Principal, admin]
    dispatcher_box: list[Dispatcher] = []

    def dispatcher() -> Dispatcher:
        # Built on first use: the app factory must not create clients or resolvers.
        if not dispatcher_box:
            dispatcher_box.append(new_dispatcher())
        return dispatcher_box[0]

    @r.get("/webhook-endpoints", response_model=WebhookEndpointListOut, summary="List webhook endpoints")
    def list_endpoints(who: Admin) -> WebhookEndpointListOut:
        return WebhookEndpointListOut(
            data=[WebhookEndpointOut.of(e) for e in endpoints.list_endpoints(who.tenant_id)]
        )

    @r.post(
        "/webhook-endpoints",
        status_code=201,
        response_model=WebhookEndpointWithSecretOut,
        summary="Create a webhook endpoint (its signing secret is shown once)",
    )
    def create_endpoint(body: EndpointIn, who: Admin) -> WebhookEndpointWithSecretOut:
        spec = EndpointSpec(body.url, body.event_types, body.streams, body.payload, body.description)
        endpoint, secret = endpoints.create(who.tenant_id, spec, actor=who.credential_id)
        return WebhookEndpointWithSecretOut.of(endpoint, secret=secret, note=SHOWN_ONCE)

    @r.get(
        "/webhook-endpoints/{endpoint_id}",
        response_model=WebhookEndpointOut,
        summary="Get a webhook endpoint",
    )
    def get_endpoint(endpoint_id: str, who: Admin) -> WebhookEndpointOut:
        return WebhookEndpointOut.of(endpoints.get(who.tenant_id, endpoint_id))

    @r.patch(
        "/webhook-endpoints/{endpoint_id}",
        response_model=WebhookEndpointOut,
        summary="Change a webhook endpoint (enable, disable, filters, URL)",
    )
    def patch_endpoint(endpoint_id: str, body: EndpointPatch, who: Admin) -> WebhookEndpointOut:
        changes = EndpointChanges(
            body.url, body.event_types, body.streams, body.payload, body.description, body.status
        )
        return WebhookEndpointOut.of(
            endpoints.update(who.tenant_id, endpoint_id, changes, actor=who.credential_id)
        )

    @r.delete("/webhook-endpoints/{endpoint_id}", status_code=204, summary="Delete a webhook endpoint")
    def delete_endpoint(endpoint_id: str, who: Admin) -> None:
        endpoints.delete(who.tenant_id, endpoint_id, actor=who.credential_id)

    @r.post(
        "/webhook-endpoints/{endpoint_id}/rotate-secret",
        response_model=WebhookEndpointWithSecretOut,
        summary="Rotate the signing secret (the old one signs too during the overlap)",
    )
    def rotate_secret(
        endpoint_id: str, who: Admin, body: RotateIn | None = None
    ) -> WebhookEndpointWithSecretOut:
        overlap = timedelta(seconds=body.overlap_seconds if body else 86400)
        endpoint, secret = endpoints.rotate_secret(who.tenant_id, endpoint_id, who.credential_id, overlap)
        return WebhookEndpointWithSecretOut.of(endpoint, secret=secret, note=SHOWN_ONCE)

    @r.post(
        "/webhook-endpoints/{endpoint_id}/test",
        response_model=WebhookTestOut,
        summary="Send a test event to the endpoint now",
    )
    async def test_endpoint(endpoint_id: str, who: Admin) -> dict[str, Any]:
        await run_in_threadpool(endpoints.row, who.tenant_id, endpoint_id)  # 404 before any I/O
        result = await dispatcher().send_test(who.tenant_id, endpoint_id, who.credential_id)
        return {
            "delivery_id": result.delivery_id,
            "ok": result.ok,
            "status_code": result.status_code,
            "error": result.error,
            "duration_ms": result.duration_ms,
        }

    @r.get(
        "/webhook-endpoints/{endpoint_id}/deliveries",
        response_model=WebhookDeliveryPageOut,
        summary="List an endpoint's deliveries, newest first, with their attempt log",
    )
    def list_deliveries(
        endpoint_id: str,
        who: Admin,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        before: Annotated[str | None, Query(max_length=40)] = None,
    ) -> WebhookDeliveryPageOut:
        data = endpoints.deliveries(who.tenant_id, endpoint_id, limit=limit, before=before)
        return WebhookDeliveryPageOut(
            data=[WebhookDeliveryOut.of(d) for d in data],
            next_before=data[-1].id if len(data) == limit else None,
        )

    @r.post(
        "/webhook-deliveries/{delivery_id}/replay",
        status_code=202,
        response_model=WebhookDeliveryOut,
        summary="Send one delivery again",
    )
    def replay_delivery(delivery_id: str, who: Admin) -> WebhookDeliveryOut:
        return WebhookDeliveryOut.of(
            endpoints.replay_delivery(who.tenant_id, delivery_id, actor=who.credential_id)
        )

    @r.post(
        "/webhook-endpoints/{endpoint_id}/replay",
        status_code=202,
        response_model=ReplayQueuedOut,
        summary="Send again every event since a time",
    )
    def replay_since(
        endpoint_id: str,
        who: Admin,
        since: Annotated[datetime, Query(description="ISO 8601 time; events at or after it are resent.")],
    ) -> dict[str, Any]:
        when = since if since.tzinfo else since.replace(tzinfo=UTC)
        queued = endpoints.replay_since(who.tenant_id, endpoint_id, when, actor=who.credential_id)
        return {"queued": queued}

    return r
