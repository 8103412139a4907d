"""Public engagement routes: open pixel, click redirect, one-click unsubscribe, preferences.

Mounted at ``/t`` and ``/u`` on the portal site and on the API app (like ``/p``), so the
links work on whichever origin ``settings.resolved_portal_url`` names.  No route needs a
login or a cookie, and none sets one.

* ``GET|HEAD /t/o/{token}``: a 1×1 GIF, ``Cache-Control: no-store``, always 200 — an
  unknown token gets the same image, so the pixel says nothing about which tokens exist.
* ``GET|HEAD /t/c/{token}``: 302 to the link's stored URL; an unknown or altered token
  gets a 404 page.  The target comes only from the sealed list the worker stored, never
  from the request, so this is no open redirect.
* ``POST /u/{token}``: RFC 8058 one-click unsubscribe.  The body must be the form field
  ``List-Unsubscribe=One-Click`` (§3.2); no cookie, no CSRF token (a mail provider posts
  it, not a browser session).  Idempotent: 200 every time, one event the first time.
* ``GET /u/{token}``: a preference page.  It never unsubscribes by itself: link scanners
  fetch every GET.  Its form posts to ``/u/{token}/preferences`` with a CSRF token bound to
  the link token, and a browser's ``Origin`` must be ours.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import base64
import hashlib

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from sealmail.engagement.service import Engagement, Subscription, SubscriptionState
from sealmail.errors import InvalidRequest, NotFound, SealmailError
from sealmail.limits.service import Limiter
from sealmail.tenancy.service import Tenancy
from sealmail.web import problems, security
from sealmail.web.throttle import PerClientLimit

log = structlog.get_logger("sealmail.engagement")

# The smallest transparent GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_UA = 512
NO_STORE = "no-store, no-cache, must-revalidate, private"

CSS = (
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}"
    "main{max-width:32rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px}"
    "h1{font-size:1.4rem;margin-top:0}button{font:inherit;padding:.5rem 1.2rem;border-radius:4px;"
    "border:1px solid #0b5cad;background:#0b5cad;color:#fff;cursor:pointer}"
    ".quiet{color:#555;font-size:.9rem}"
)
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
# No script at all, our own form target only, never framed.
PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
STREAM_LABELS = {
    "broadcast": "newsletters and announcements",
    "transactional": "notifications",
    "phi": "secure messages",
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Email preferences · {{ org }}</title><style>@CSS@</style></head>
<body><main>
<h1>Email preferences</h1>
<p>{{ org }} · {{ label }} to {{ masked }}</p>
{% if state == SubscriptionState.SUBSCRIBED %}
<p id="state">You are subscribed.</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="action" value="unsubscribe">
<button type="submit">Unsubscribe</button></form>
{% elif state == SubscriptionState.UNSUBSCRIBED %}
<p id="state">You are unsubscribed and will not receive {{ label }} from {{ org }}.</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="action" value="resubscribe">
<button type="submit">Subscribe again</button></form>
{% else %}
<p id="state">This address does not receive {{ label }} from {{ org }}.</p>
{% endif %}
<p class="quiet">Messages you need for your care are not affected by this choice.</p>
</main></body></html>
""".replace("@CSS@", CSS)
NOT_FOUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Link not found</title>
<style>@CSS@</style></head><body><main><h1>This link does not work</h1>
<p>It may have been copied incompletely.</p></main></body></html>
""".replace("@CSS@", CSS)


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def _page(html: str, status: int = 200) -> Response:
    return security.harden(HTMLResponse(html, status_code=status), PAGE_CSP)


def _problem(request: Request, exc: SealmailError) -> Response:
    return problems.problem_response(exc.problem(instance=request.url.path))


def _user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:MAX_UA]


def create_tracking(engagement: Engagement) -> FastAPI:
    """The open pixel and click redirector; mount at ``/t``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # A form the parser refuses (too many fields, a file, a broken multipart) is a problem like
    # every other refusal here, not FastAPI's bare {"detail": ...}.
    problems.install(app)

    @app.api_route("/o/{token}", methods=["GET", "HEAD"], include_in_schema=False)
    async def pixel(request: Request, token: str) -> Response:
        try:
            await run_in_threadpool(
                engagement.opened, token, user_agent=_user_agent(request), method=request.method
            )
        except SQLAlchemyError:
            # The image is served anyway: a reader's mail client must not show a broken
            # image because the database was briefly unavailable.
            log.warning("engagement.open_not_recorded")
        response = Response(PIXEL, media_type="image/gif", headers={"Cache-Control": NO_STORE})
        response.headers["Pragma"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.api_route("/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
    async def click(request: Request, token: str) -> Response:
        url = await run_in_threadpool(
            engagement.clicked, token, user_agent=_user_agent(request), method=request.method
        )
        if url is None:
            return _page(NOT_FOUND, 404)
        # no-referrer: the destination must not learn the tracking URL (it names a recipient).
        return RedirectResponse(
            url, status_code=302, headers={"Cache-Control": NO_STORE, "Referrer-Policy": "no-referrer"}
        )

    return app


def create_unsubscribe(tenancy: Tenancy, engagement: Engagement) -> FastAPI:
    """One-click unsubscribe and the preference page; mount at ``/u``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # A form the parser refuses (too many fields, a file, a broken multipart) is a problem like
    # every other refusal here, not FastAPI's bare {"detail": ...}.
    problems.install(app)
    env = Environment(autoescape=True)
    env.globals["SubscriptionState"] = SubscriptionState  # the page compares with the enum
    page = env.from_string(PAGE)

    def render(request: Request, token: str, sub: Subscription) -> Response:
        try:
            org = tenancy.get_tenant(sub.target.tenant_id).name
        except NotFound:
            org = "The sender"
        html = page.render(
            org=org,
            label=STREAM_LABELS.get(sub.target.stream, "messages"),
            masked=_mask(sub.target.address),
            state=sub.state,
            csrf=engagement.csrf(token),
            action=f"{request.scope.get('root_path', '')}/{token}/preferences",
        )
        return _page(html)

    @app.post("/{token}", include_in_schema=False)
    async def one_click(request: Request, token: str) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        # RFC 8058 §3.2: the POST body carries exactly this key and value.
        if form.get("List-Unsubscribe") != "One-Click":
            return _problem(request, InvalidRequest("post the form field List-Unsubscribe=One-Click"))
        sub = await run_in_threadpool(engagement.unsubscribe, token, "one_click")
        if sub is None:
            return _problem(request, NotFound("unknown unsubscribe link"))
        return security.harden(PlainTextResponse("You are unsubscribed.\n"), "default-src 'none'")

    @app.get("/{token}", include_in_schema=False)
    async def preferences(request: Request, token: str) -> Response:
        sub = await run_in_threadpool(engagement.subscription, token)
        if sub is None:
            return _page(NOT_FOUND, 404)
        return await run_in_threadpool(render, request, token, sub)

    @app.post("/{token}/preferences", include_in_schema=False)
    async def change(request: Request, token: str) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        if not security.same_origin(request) or not engagement.csrf_ok(token, form.get("csrf")):
            return _page(NOT_FOUND.replace("This link does not work", "This form has expired"), 403)
        action = form.get("action")
        if action == "unsubscribe":
            sub = await run_in_threadpool(engagement.unsubscribe, token, "preference_page")
        elif action == "resubscribe":
            sub = await run_in_threadpool(engagement.resubscribe, token)
        else:
            return _problem(request, InvalidRequest("action must be unsubscribe or resubscribe"))
        if sub is None:
            return _page(NOT_FOUND, 404)
        # Post/redirect/get: a reload must not post the form again.
        return RedirectResponse(f"{request.scope.get('root_path', '')}/{token}", status_code=303)

    return app


def mount(app: FastAPI, engagement: Engagement, tenancy: Tenancy, limiter: Limiter, per_minute: int) -> None:
    """Add ``/t`` and ``/u`` to a site (the API app or the portal's own)."""
    # Per-address limits: these links are public and each hit writes to the database.
    app.mount("/t", PerClientLimit(create_tracking(engagement), limiter, per_minute, "tracking"))
    app.mount(
        "/u", PerClientLimit(create_unsubscribe(tenancy, engagement), limiter, per_minute, "unsubscribe")
    )
