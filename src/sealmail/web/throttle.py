"""Request limits for the HTTP surfaces: the shared plumbing and the per-client limit.

Public routes (``/t``, ``/u``, ``/p``) are limited per client address; the API's own gate
(failed authentication, per-key limits) is ``intake.api.guard``.  Refusals are 429
problem+json with ``Retry-After`` (RFC 9110 §10.2.3, RFC 6585 §4) and every counted answer
carries the ``RateLimit-Policy`` and ``RateLimit`` fields of
draft-ietf-httpapi-ratelimit-headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealmail.errors import RateLimited
from sealmail.limits.service import Limiter, MemoryLimiter, Verdict
from sealmail.web import problems

T = TypeVar("T")
STATE_KEY = "ratelimit_headers"


def client_address(scope: Scope) -> str:
    """The peer address; behind a proxy, uvicorn's ``--proxy-headers`` puts the client's here."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def run(limiter: Limiter, fn: Callable[..., T], *args: Any) -> T:
    # The in-process counters are a dict under a lock; anything else does I/O.
    if isinstance(limiter, MemoryLimiter):
        return fn(*args)
    return await to_thread.run_sync(fn, *args)


async def hit(limiter: Limiter, key: str, limit: int, window: int) -> Verdict:
    """Count one hit: on the event loop when the limiter can answer without I/O, else in a thread."""
    verdict = limiter.cached_hit(key, limit, window)
    if verdict is not None:
        return verdict
    return await to_thread.run_sync(limiter.hit, key, limit, window)


def refusal(verdict: Verdict, policy: str, detail: str) -> RateLimited:
    return RateLimited(f"{detail}; retry in {verdict.reset} s", headers=verdict.headers(policy))


def _adding(send: Send, headers: Callable[[], dict[str, str] | None]) -> Send:
    async def with_headers(message: Message) -> None:
        extra = headers()
        if message["type"] == "http.response.start" and extra:
            message["headers"] = [
                *message.get("headers", []),
                *((k.lower().encode(), v.encode()) for k, v in extra.items()),
            ]
        await send(message)

    return with_headers


class RateLimitHeaders:
    """Add the ``RateLimit`` fields that authentication left in the scope to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        await self.app(scope, receive, _adding(send, lambda: state.get(STATE_KEY)))


class PerClientLimit:
    """A per-address request limit in front of a public app (``/t``, ``/u``, ``/p``)."""

    def __init__(self, app: ASGIApp, limiter: Limiter, per_minute: int, policy: str) -> None:
        self.app = app
        self.limiter = limiter
        self.per_minute = per_minute
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = f"{self.policy}:ip:{client_address(scope)}"
        verdict = await hit(self.limiter, key, self.per_minute, 60)
        headers = verdict.headers(self.policy)
        if not verdict.allowed:
            error = RateLimited(f"too many requests from this address; retry in {verdict.reset} s")
            await problems.problem_response(error.problem(scope.get("path")), headers)(scope, receive, send)
            return
        await self.app(scope, receive, _adding(send, lambda: headers))
