"""Request guards every HTTP role puts in front of its routes, before a byte reaches them.

* ``NoNul``: a path or query holding NUL is a 400 (PostgreSQL text cannot hold NUL, so an id
  with one reached the driver as an error: a 500).
* ``BodyLimit``: a body over the role's limit is a 413, refused from its declared length or
  the moment a chunked one passes it, never held whole.

The API process and the portal role (``intake.portal_site``) both install them: the portal's
pages, forms and tracking links are as public as the API, and a role serving them alone got
neither guard until both lived here.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from sealmail.domain.numerals import exceeds
from sealmail.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from sealmail.web import problems
from sealmail.web.body_watch import BodyWatch


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
            await problems.problem_response(
                PayloadTooLarge(
                    f"body is {length} bytes; the limit is {self.limit} (SEALMAIL_MAX_REQUEST_BYTES)"
                ).problem(path)
            )(scope, receive, send)
            return
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        if path.startswith("/v1/") and length not in (None, "0") and not ctype.startswith("application/json"):
            await problems.problem_response(
                UnsupportedMediaType("send the body as application/json").problem(path)
            )(scope, receive, send)
            return
        watch = BodyWatch(receive, send, self.limit, json_strings=path.startswith("/v1/"))
        try:
            await self.app(scope, watch.receive, watch.send)
        except Exception:
            if watch.refused is None or watch.started:
                raise
        if watch.refused is not None and not watch.started:
            await problems.problem_response(watch.refused.problem(path))(scope, receive, send)


class NoNul:
    """Refuse a path or query holding NUL (``%00``) with a 400 problem.

    PostgreSQL text cannot hold NUL, so an id or cursor with one would reach the driver
    as an error (a 500) instead of the 404 or 422 it deserves.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            await problems.problem_response(
                InvalidRequest("the path and query must not contain NUL (%00)").problem(scope["path"])
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)
