"""Request guards every HTTP role puts in front of its routes, before a byte reaches them.

* ``NoNul``: a path or query holding NUL is a 400 (PostgreSQL text cannot hold NUL, so an id
  with one reached the driver as an error: a 500).
* ``BodyLimit``: a body over the role's limit is a 413, refused from its declared length or
  the moment a chunked one passes it, never held whole.

Either refusal is an RFC 9457 problem for an API client and a small page for a browser
(``refusal``): the console, portal and forms are opened in one, where JSON was no answer.

The API process and the portal role (``intake.portal_site``) both install them: the portal's
pages, forms and tracking links are as public as the API, and a role serving them alone got
neither guard until both lived here.
"""

from __future__ import annotations

import html
from collections.abc import Collection

from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sealmail.domain.numerals import exceeds
from sealmail.errors import InvalidRequest, PayloadTooLarge, SealmailError, UnsupportedMediaType
from sealmail.web import problems, security
from sealmail.web.body_watch import BodyWatch

PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
    "<body><h1>{title}</h1><p>{detail}</p></body></html>"
)
PAGE_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def refusal(scope: Scope, error: SealmailError) -> Response:
    """An RFC 9457 problem for an API client; a page for a browser opening a page.

    A browser asks for ``text/html`` (its navigations always do); an API client never does,
    and ``/v1`` is the API whatever is asked.  Neither form quotes the request back.
    """
    accept = dict(scope["headers"]).get(b"accept", b"")
    if scope["path"].startswith("/v1/") or b"text/html" not in accept:
        return problems.problem_response(error.problem(scope["path"]))
    page = PAGE.format(title=html.escape(error.title), detail=html.escape(error.detail))
    return security.harden(HTMLResponse(page, status_code=error.status), PAGE_CSP)


class BodyLimit:
    """Refuse oversized bodies while they stream in, and non-JSON bodies on ``/v1/``.

    A pure ASGI middleware: a declared Content-Length over the limit is refused before
    reading; a chunked body is counted as it arrives and refused (413) the moment it passes
    the limit, so an oversized upload is never held whole in memory; a ``/v1`` JSON string
    holding NUL is a 422 (``body_watch``).
    """

    def __init__(self, app: ASGIApp, limit: int, streamed: Collection[str] = ()) -> None:
        self.app = app
        self.limit = limit
        self.streamed = frozenset(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.streamed:
            # These stream raw bytes (a file; RFC 8460's application/tlsrpt+gzip; a CSV of
            # contacts) and cap their size themselves as they read.
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode() or None
        path = scope["path"]
        if length is not None and exceeds(length, self.limit):
            too_large = f"body is {length} bytes; the limit is {self.limit} (SEALMAIL_MAX_REQUEST_BYTES)"
            await refusal(scope, PayloadTooLarge(too_large))(scope, receive, send)
            return
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        if path.startswith("/v1/") and length not in (None, "0") and not ctype.startswith("application/json"):
            unsupported = UnsupportedMediaType("send the body as application/json")
            await refusal(scope, unsupported)(scope, receive, send)
            return
        watch = BodyWatch(receive, send, self.limit, json_strings=path.startswith("/v1/"))
        try:
            await self.app(scope, watch.receive, watch.send)
        except Exception:
            if watch.refused is None or watch.started:
                raise
        if watch.refused is not None and not watch.started:
            await refusal(scope, watch.refused)(scope, receive, send)


class NoNul:
    """Refuse a path or query holding NUL (``%00``) with a 400 (a problem, or a browser's page).

    PostgreSQL text cannot hold NUL, so an id or cursor with one would reach the driver
    as an error (a 500) instead of the 404 or 422 it deserves.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            nul = InvalidRequest("the path and query must not contain NUL (%00)")
            await refusal(scope, nul)(scope, receive, send)
            return
        await self.app(scope, receive, send)
