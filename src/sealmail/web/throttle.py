"""Request limits for the HTTP surfaces: failed authentication, per API key, per client.

Failed API-key authentications are counted per key id and per client address, and checked
*before* argon2 runs, so guessing secrets is slow and cannot buy server CPU.  Every
authenticated request counts against its key's per-minute limit (the tenant's
``rate_limit`` setting, else ``api_rate_limit_per_minute``).  Public routes (``/t``, ``/u``,
``/p``) are limited per client address.  Refusals are 429 problem+json with ``Retry-After``
(RFC 9110 §10.2.3, RFC 6585 §4) and every counted answer carries the ``RateLimit-Policy`` and
``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealmail.config import Settings
from sealmail.errors import AuthenticationRequired, RateLimited
from sealmail.limits.service import FailureThrottle, Limiter, MemoryLimiter, Verdict
from sealmail.tenancy.service import Principal, Tenancy
from sealmail.web import problems

T = TypeVar("T")
STATE_KEY = "ratelimit_headers"
# A tenant's own limit is re-read this often; a change applies within that time.
TENANT_LIMIT_SECONDS = 30.0


def client_address(scope: Scope) -> str:
    """The peer address; behind a proxy, uvicorn's ``--proxy-headers`` puts the client's here."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _run(limiter: Limiter, fn: Callable[..., T], *args: Any) -> T:
    # The in-process counters are a dict under a lock; anything else does I/O.
    if isinstance(limiter, MemoryLimiter):
        return fn(*args)
    return await to_thread.run_sync(fn, *args)


def refusal(verdict: Verdict, policy: str, detail: str) -> RateLimited:
    return RateLimited(f"{detail}; retry in {verdict.reset} s", headers=verdict.headers(policy))


class ApiGuard:
    """Authentication with failure throttling, then the key's request limit."""

    def __init__(self, settings: Settings, tenancy: Tenancy, limiter: Limiter) -> None:
        self.settings = settings
        self.tenancy = tenancy
        self.limiter = limiter
        self._tenant_limits: dict[str, tuple[float, int]] = {}
        self.failures = FailureThrottle(
            limiter, settings.auth_failure_limit, settings.auth_failure_window_seconds
        )

    async def authenticate(self, request: Request, presented: str) -> Principal:
        who = self.tenancy.cached_principal(presented)
        if who is None:
            who = await self._slow_path(presented, client_address(request.scope))
        limit = self._cached_limit(who.tenant_id)
        if limit is None:
            limit = await to_thread.run_sync(self._key_limit, who.tenant_id)
        verdict = await _run(self.limiter, self.limiter.hit, f"key:{who.credential_id}", limit, 60)
        if not verdict.allowed:
            raise refusal(verdict, "key", "this API key sent too many requests this minute")
        request.scope.setdefault("state", {})[STATE_KEY] = verdict.headers("key")
        return who

    async def _slow_path(self, presented: str, client: str) -> Principal:
        keys = self._failure_keys(presented, client)
        refused = await _run(self.limiter, self.failures.refused, keys)
        if refused is not None:
            # Refused before argon2 runs: a guesser can buy neither answers nor CPU.
            raise refusal(refused, "auth", "too many failed authentications from this client or for this key")
        try:
            return await to_thread.run_sync(self.tenancy.authenticate, presented)
        except AuthenticationRequired:
            await _run(self.limiter, self.failures.failed, keys)
            raise

    @staticmethod
    def _failure_keys(presented: str, client: str) -> list[str]:
        keys = [f"authfail:ip:{client}"]
        parts = presented.split("_", 2)
        if len(parts) == 3 and parts[1]:
            # The key id is public (it only finds the row), and bounded to keep buckets small.
            keys.append(f"authfail:key:{parts[1][:64]}")
        return keys

    def _cached_limit(self, tenant_id: str) -> int | None:
        cached = self._tenant_limits.get(tenant_id)
        if cached is None or time.monotonic() - cached[0] >= TENANT_LIMIT_SECONDS:
            return None
        return cached[1]

    def _key_limit(self, tenant_id: str) -> int:
        configured = (self.tenancy.get_tenant(tenant_id)["settings"] or {}).get("rate_limit")
        if isinstance(configured, int):
            limit = min(configured, self.settings.api_rate_limit_max_per_minute)
        else:
            limit = self.settings.api_rate_limit_per_minute
        self._tenant_limits[tenant_id] = (time.monotonic(), limit)
        return limit


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
        verdict = await _run(self.limiter, self.limiter.hit, key, self.per_minute, 60)
        headers = verdict.headers(self.policy)
        if not verdict.allowed:
            error = RateLimited(f"too many requests from this address; retry in {verdict.reset} s")
            await problems.problem_response(error.problem(scope.get("path")), headers)(scope, receive, send)
            return
        await self.app(scope, receive, _adding(send, lambda: headers))
