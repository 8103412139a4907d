"""Rate limits on the console's routes that answer before anyone is signed in.

Lockout (``users.signin``) protects one account from password guessing; this protects the
server and the OP from a client hammering the steps themselves: the sign-in form and its
password post, the second-factor page (which issues a fresh WebAuthn challenge each time)
and its code and passkey posts, single sign-on's start (a state row and a trip to the OP)
and callback (a code exchange), one-time links and enrolment.  Each step has its own
per-address window, so a person signing in normally (four or five requests) is never near
it; past it the answer is 429 with ``Retry-After`` and the ``RateLimit`` fields, as on
every other surface (``web/throttle.py``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from sealmail.errors import RateLimited
from sealmail.limits.service import Limiter
from sealmail.web import problems
from sealmail.web.throttle import client_address, run

POLICY = "console-signin"

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
        path, root = scope["path"], scope.get("root_path", "")
        step = step_of(path[len(root) :] if root and path.startswith(root) else path)
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
