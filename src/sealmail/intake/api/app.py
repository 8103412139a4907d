"""The REST API (FastAPI): a thin adapter from HTTP to the services.

No ``from __future__ import annotations`` here: FastAPI reads the ``Annotated``
dependencies of the route functions at definition time, closures included.
"""

from dataclasses import replace
from typing import Annotated, Any, Protocol

import orjson
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from starlette.responses import Response

from sealmail.console import large_files
from sealmail.errors import (
    InvalidRequest,
)
from sealmail.evidence import api as evidence_api
from sealmail.evidence.service import Evidence
from sealmail.files import api as files_api
from sealmail.files.service import FileShares
from sealmail.forms import api as forms_api
from sealmail.forms.service import Forms
from sealmail.intake.api.fast import FastPost, Handler, M
from sealmail.intake.api.guard import ApiGuard, ScopedBearer
from sealmail.intake.api.options import ApiOptions
from sealmail.intake.portal_site import SiteServices, mount_public
from sealmail.limits.service import Limiter
from sealmail.marketing import api as marketing_api
from sealmail.marketing.service import Marketing
from sealmail.messages import compose
from sealmail.messages.accept import Accepted
from sealmail.messages.schemas import (
    AcceptedOut,
    CancelledOut,
    MessageContentOut,
    MessageIn,
    MessageOut,
    PageOut,
    RawMessageIn,
    message_body,
    message_page,
)
from sealmail.messages.service import Idempotency, Messages, request_hash
from sealmail.net.dns import Resolver
from sealmail.portal import api as portal_admin
from sealmail.portal.lifecycle import PortalLifecycle
from sealmail.secureline import api as secureline_api
from sealmail.secureline.api import SecureLineServices
from sealmail.sms import api as sms_api
from sealmail.sms.service import Texting
from sealmail.store import db
from sealmail.suppressions import api as suppressions_api
from sealmail.suppressions.service import Suppressions
from sealmail.templates import api as templates_api
from sealmail.templates.bulk import BulkSender
from sealmail.templates.store import TemplateStore
from sealmail.tenancy import api as admin
from sealmail.tenancy.service import Principal, Tenancy
from sealmail.tlsrpt import api as tlsrpt_api
from sealmail.tlsrpt.service import TlsReports
from sealmail.web import problems
from sealmail.web.guards import BodyLimit, NoNul
from sealmail.web.models import Instant, Problem, as_json
from sealmail.web.throttle import RateLimitHeaders
from sealmail.webhooks import api as webhooks_api
from sealmail.webhooks.dispatcher import Dispatcher
from sealmail.webhooks.endpoints import WebhookEndpoints

PROBLEM_REF = "#/components/schemas/Problem"
ERRORS: dict[int | str, dict[str, Any]] = {
    # The body is sent as application/problem+json, so that is where the schema must be.
    code: {"model": Problem, "content": {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}}
    for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


# Routes that stream raw bytes and cap their size themselves as they read (the console's
# large-file upload as the API role mounts it, ``runtime.api_app``).
STREAMED = (files_api.UPLOAD_PATH, tlsrpt_api.UPLOAD_PATH, marketing_api.UPLOAD_PATH, large_files.UPLOAD_PATH)


def fast_ahead(app: FastAPI, path: str, model: type[M], need: ScopedBearer, handle: Handler[M]) -> None:
    """Put a ``FastPost`` for ``POST path`` just ahead of the FastAPI route it stands in for."""
    routes = app.router.routes
    at, route = next(
        (i, r)
        for i, r in enumerate(routes)
        if isinstance(r, APIRoute) and r.path == path and "POST" in (r.methods or ())
    )
    routes.insert(at, FastPost(route, model, need, handle))


def accepted_response(result: Accepted, replayed: bool) -> Response:
    """202 with ``AcceptedOut``'s body, built directly (the same bytes a ``JSONResponse`` of
    the model renders, for a fraction of the CPU)."""
    return Response(
        orjson.dumps(AcceptedOut.body_of(result)),
        status_code=202,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )


class ApiServices(SecureLineServices, SiteServices, Protocol):
    """What the API app is handed by the composition root (``sealmail.app.Services``)."""

    @property
    def engine(self) -> Engine: ...
    @property
    def tenancy(self) -> Tenancy: ...
    @property
    def messages(self) -> Messages: ...
    @property
    def limiter(self) -> Limiter: ...
    @property
    def api_options(self) -> ApiOptions: ...
    @property
    def file_shares(self) -> FileShares: ...
    @property
    def portal_lifecycle(self) -> PortalLifecycle: ...
    @property
    def suppressions(self) -> Suppressions: ...
    @property
    def template_store(self) -> TemplateStore: ...
    @property
    def bulk_sender(self) -> BulkSender: ...
    @property
    def webhook_endpoints(self) -> WebhookEndpoints: ...
    @property
    def evidence(self) -> Evidence: ...
    @property
    def marketing(self) -> Marketing: ...
    @property
    def tlsrpt(self) -> TlsReports: ...
    @property
    def forms(self) -> Forms: ...
    @property
    def texting(self) -> Texting: ...
    def webhook_dispatcher(self) -> Dispatcher: ...
    def dns_resolver(self) -> Resolver: ...


def create_api(services: ApiServices) -> FastAPI:
    opts = services.api_options
    app = FastAPI(
        title="Sealmail API",
        version="1",
        description="Secure email for healthcare: accept, encrypt at rest, deliver over "
        "enforced TLS, and account for every step.",
        responses=ERRORS,
    )
    problems.install(app)
    app.add_middleware(BodyLimit, limit=opts.max_request_bytes, streamed=STREAMED)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(NoNul)
    guard = ApiGuard(opts.limits, services.tenancy, services.limiter)
    msgs = services.messages
    domain_for_ids = opts.message_id_domain
    # Declared as a security scheme so the OpenAPI document (and clients built from it)
    # know every /v1 operation takes a bearer API key.  Async: a key verified in the last
    # few seconds is answered from memory on the event loop, and only the database read and
    # argon2 go to a thread (a sync dependency would cost a thread-pool round trip).
    scoped: dict[str, ScopedBearer] = {}

    def need(scope: str) -> Any:
        if scope not in scoped:
            scoped[scope] = ScopedBearer(guard, scope, "An API key: `Authorization: Bearer sm_…`")
        return Depends(scoped[scope])

    def idempotency(key: str | None, body: bytes) -> Idempotency | None:
        if key is None:
            return None
        if not key or len(key) > 256 or not key.isprintable():
            raise InvalidRequest("Idempotency-Key must be 1–256 printable characters")
        return Idempotency(key, request_hash(body))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with db.reader(services.engine) as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok"}

    async def accept_message(request: Request, raw: bytes, body: MessageIn, who: Principal) -> Response:
        idem = idempotency(request.headers.get("idempotency-key"), raw)
        sub = compose.from_message(body, domain_for_ids, opts.max_recipients)
        if body.notice:
            addresses = [r.address for r in sub.recipients]
            notices = await run_in_threadpool(
                services.texting.check_notices, who.tenant_id, body.notice, addresses
            )
            sub = replace(sub, notices=notices)
        result, replayed = await msgs.submit_async(who, sub, idem)
        return accepted_response(result, replayed)

    async def accept_raw(request: Request, raw: bytes, body: RawMessageIn, who: Principal) -> Response:
        idem = idempotency(request.headers.get("idempotency-key"), raw)
        sub = compose.from_raw(body, domain_for_ids, opts.max_recipients, opts.intake_limits)
        result, replayed = await msgs.submit_async(who, sub, idem)
        return accepted_response(result, replayed)

    # Requests that do not take the fast way in (``fast.FastPost``) and the OpenAPI document.
    @app.post("/v1/messages", status_code=202, response_model=AcceptedOut, tags=["messages"])
    async def send_message(
        request: Request,
        body: MessageIn,
        who: Annotated[Principal, need("send")],
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        return await accept_message(request, await request.body(), body, who)

    @app.post("/v1/messages/raw", status_code=202, response_model=AcceptedOut, tags=["messages"])
    async def send_raw(
        request: Request,
        body: RawMessageIn,
        who: Annotated[Principal, need("send")],
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        return await accept_raw(request, await request.body(), body, who)

    fast_ahead(app, "/v1/messages", MessageIn, scoped["send"], accept_message)
    fast_ahead(app, "/v1/messages/raw", RawMessageIn, scoped["send"], accept_raw)

    @app.get("/v1/messages", response_model=PageOut, tags=["messages"])
    def list_messages(
        who: Annotated[Principal, need("read")],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
        status: str | None = None,
        recipient: str | None = None,
        tag: str | None = None,
        stream: str | None = None,
        since: Instant | None = None,
        until: Instant | None = None,
    ) -> dict[str, Any]:
        return message_page(
            msgs.search(
                who,
                limit=limit,
                cursor=cursor,
                status=status,
                recipient=recipient,
                tag=tag,
                stream=stream,
                since=since,
                until=until,
            )
        )

    @app.get(
        "/v1/messages/{message_id}", response_model=MessageOut, tags=["messages"], summary="Get a message"
    )
    def get_message(message_id: str, who: Annotated[Principal, need("read")]) -> dict[str, Any]:
        return message_body(msgs.get(who, message_id))

    @app.get(
        "/v1/messages/{message_id}/content",
        response_model=MessageContentOut,
        tags=["messages"],
        summary="Read a message's decrypted content",
    )
    def get_content(message_id: str, who: Annotated[Principal, need("read")]) -> MessageContentOut:
        """Decrypted subject, bodies and attachment list. Every read is audited."""
        return MessageContentOut.from_result(msgs.content(who, message_id))

    @app.post(
        "/v1/messages/{message_id}/cancel",
        response_model=CancelledOut,
        tags=["messages"],
        summary="Cancel a message's queued recipients",
    )
    def cancel_message(message_id: str, who: Annotated[Principal, need("send")]) -> CancelledOut:
        return CancelledOut.from_result(msgs.cancel(who, message_id))

    @app.get("/v1/events", response_model=PageOut, tags=["events"])
    def list_events(
        who: Annotated[Principal, need("read")],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        type: str | None = None,
        message_id: str | None = None,
        recipient: str | None = None,
        since: Instant | None = None,
        until: Instant | None = None,
    ) -> PageOut:
        return PageOut.of(
            msgs.list_events(
                who,
                limit=limit,
                cursor=cursor,
                type_=type,
                message_id=message_id,
                recipient=recipient,
                since=since,
                until=until,
            )
        )

    @app.get("/v1/captured", response_model=PageOut, tags=["development"])
    def list_captured(
        who: Annotated[Principal, need("read")],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """What the built-in capture sink received for this tenant's messages."""
        from sealmail.delivery import capture_sink

        page = capture_sink.list_for_tenant(services.engine, who.tenant_id, limit, cursor)
        return {"data": [as_json(c) for c in page.items], "next_cursor": page.next_cursor}

    resolver = services.dns_resolver()
    app.include_router(admin.router(services, need("admin"), resolver, opts.limits.max_per_minute))
    app.include_router(secureline_api.router(services, need, resolver))
    app.include_router(
        webhooks_api.router(services.webhook_endpoints, services.webhook_dispatcher, need("admin"))
    )
    app.include_router(portal_admin.router(services.portal_lifecycle, need))
    app.include_router(files_api.router(services.file_shares, need, opts.max_file_bytes))
    app.include_router(templates_api.router(services.template_store, services.bulk_sender, need))
    app.include_router(suppressions_api.router(services.suppressions, need))
    app.include_router(evidence_api.router(services.evidence, need))
    app.include_router(marketing_api.router(services.marketing, need))
    app.include_router(tlsrpt_api.router(services.tlsrpt, need))
    app.include_router(forms_api.router(services.forms, services.form_submissions, need))
    app.include_router(sms_api.router(services.texting, need))
    if opts.portal_on_api:
        # The portal, tracking and unsubscribe links point at the portal URL, which is this
        # server then.
        mount_public(app, services)
    return app
