"""Rate limits on the console: the routes that answer before anyone is signed in, and the
signed-in pages.

Lockout (``users.signin``) protects one account from password guessing; this protects the
server and the OP from a client hammering the steps themselves: the sign-in form and its
password post, the second-factor page (which issues a fresh WebAuthn challenge each time)
and its code and passkey posts, single sign-on's start (a state row and a trip to the OP)
and callback (a code exchange), one-time links and enrolment.  Each step has its own
per-address window, so a person signing in normally (four or five requests) is never near
it; past it the answer is 429 with ``Retry-After`` and the ``RateLimit`` fields, as on
every other surface (``web/throttle.py``).

Signed-in pages (``SessionLimit``) are counted per session — under a digest of the session
cookie, never the token itself, since the counters may live in a database table — and per
client address at ``ADDRESS_FACTOR`` times that (a whole office may sit behind one address, and
a client minting fresh cookies still meets the address's window).  Past either the answer is a
429 page with ``Retry-After``: the console is a browser surface.
"""

from __future__ import annotations

import hashlib

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sealmail.errors import RateLimited
from sealmail.limits.service import Limiter
from sealmail.web import problems
from sealmail.web.throttle import client_address, run

POLICY = "console-signin"
PAGES_POLICY = "console"
ADDRESS_FACTOR = 4
# Not pages: the stylesheet and scripts a page loads come with it, and cost nothing.
UNCOUNTED_PREFIXES = ("/static/",)

# Path (inside the console) -> the step it is counted under.  ``/welcome/<token>`` by prefix.
STEPS = {
    "/signin": "signin",
    "/signin/code": "second-factor",
    "/signin/passkey": "passkey",
    "/signin/sso": "sso-start",
    "/sso/callback": "sso-callback",
    "/enroll": "enroll",
}
PREFIXES = {"/welcome/": "link"}


def step_of(path: str) -> str | None:
    """The sign-in step a console path belongs to, or None (signed-in pages, static files)."""
    if path in STEPS:
        return STEPS[path]
    return next((step for prefix, step in PREFIXES.items() if path.startswith(prefix)), None)


class SignInLimit:
    """Per client address and step: ``per_minute`` requests, then 429 until the window ends."""

    def __init__(self, app: ASGIApp, limiter: Limiter, per_minute: int) -> None:
        self.app = app
        self.limiter = limiter
        self.per_minute = per_minute

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        step = step_of(_inner(scope))
        if step is None:
            await self.app(scope, receive, send)
            return
        key = f"{POLICY}:{step}:ip:{client_address(scope)}"
        verdict = await run(self.limiter, self.limiter.hit, key, self.per_minute, 60)
        if not verdict.allowed:
            error = RateLimited(f"too many sign-in requests from this address; retry in {verdict.reset} s")
            respond = problems.problem_response(error.problem(path), verdict.headers(POLICY))
            await respond(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _inner(scope: Scope) -> str:
    """The path inside the console (the mount's root path removed)."""
    path, root = scope["path"], scope.get("root_path", "")
    return str(path[len(root) :] if root and path.startswith(root) else path)


def too_many_page(reset: int) -> bytes:
    """The 429 page: plain HTML (no script, no style: the CSP allows neither inline)."""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Too many requests</title>"
        "<h1>Too many requests</h1>"
        f"<p>This session sent more requests than the console allows in a minute. "
        f"Wait {reset} seconds, then reload the page.</p></html>"
    ).encode()


class SessionLimit:
    """Signed-in pages: ``per_minute`` requests per session, ``ADDRESS_FACTOR`` × that per
    client address; the sign-in steps are ``SignInLimit``'s and static files are free."""

    def __init__(self, app: ASGIApp, limiter: Limiter, per_minute: int, cookie: str) -> None:
        self.app = app
        self.limiter = limiter
        self.per_minute = per_minute
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner = _inner(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or step_of(inner) is not None or inner.startswith(UNCOUNTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = HTTPConnection(scope).cookies.get(self.cookie, "")
        limits = [(f"{PAGES_POLICY}:ip:{client_address(scope)}", self.per_minute * ADDRESS_FACTOR)]
        if token:
            digest = hashlib.sha256(token.encode()).hexdigest()[:32]
            limits.insert(0, (f"{PAGES_POLICY}:session:{digest}", self.per_minute))
        for key, limit in limits:
            verdict = await run(self.limiter, self.limiter.hit, key, limit, 60)
            if not verdict.allowed:
                headers = verdict.headers(PAGES_POLICY)
                await HTMLResponse(too_many_page(verdict.reset), 429, headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)
