"""The API's gate: authentication with failure throttling, then the key's request limit.

Failed API-key authentications are counted per key id and per client address, and checked
*before* argon2 runs, so guessing secrets is slow and cannot buy server CPU.  Every
authenticated request counts against its key's per-minute limit (the tenant's
``rate_limit`` setting, else ``per_minute``); the headers it earns are left in the scope for
``web.throttle.RateLimitHeaders``.
"""

from __future__ import annotations

import time

from anyio import to_thread
from fastapi.security import HTTPBearer
from starlette.requests import Request

from sealmail.errors import AuthenticationRequired, PermissionDenied
from sealmail.intake.api.options import ApiLimits
from sealmail.limits.service import FailureThrottle, Limiter
from sealmail.tenancy.service import Principal, Tenancy
from sealmail.web.throttle import STATE_KEY, client_address, hit, refusal, run

# A tenant's own limit is re-read this often; a change applies within that time.
TENANT_LIMIT_SECONDS = 30.0


class ApiGuard:
    """Authentication with failure throttling, then the key's request limit."""

    def __init__(self, limits: ApiLimits, tenancy: Tenancy, limiter: Limiter) -> None:
        self.limits = limits
        self.tenancy = tenancy
        self.limiter = limiter
        self._tenant_limits: dict[str, tuple[float, int]] = {}
        self.failures = FailureThrottle(
            limiter, limits.auth_failure_limit, limits.auth_failure_window_seconds
        )

    async def authenticate(self, request: Request, presented: str) -> Principal:
        who = self.tenancy.cached_principal(presented)
        if who is None:
            who = await self._slow_path(presented, client_address(request.scope))
        limit = self._cached_limit(who.tenant_id)
        if limit is None:
            limit = await to_thread.run_sync(self._key_limit, who.tenant_id)
        verdict = await hit(self.limiter, f"key:{who.credential_id}", limit, 60)
        if not verdict.allowed:
            raise refusal(verdict, "key", "this API key sent too many requests this minute")
        request.scope.setdefault("state", {})[STATE_KEY] = verdict.headers("key")
        return who

    async def _slow_path(self, presented: str, client: str) -> Principal:
        keys = self._failure_keys(presented, client)
        refused = await run(self.limiter, self.failures.refused, keys)
        if refused is not None:
            # Refused before argon2 runs: a guesser can buy neither answers nor CPU.
            raise refusal(refused, "auth", "too many failed authentications from this client or for this key")
        try:
            return await to_thread.run_sync(self.tenancy.authenticate, presented)
        except AuthenticationRequired:
            await run(self.limiter, self.failures.failed, keys)
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
        configured = self.tenancy.get_tenant(tenant_id).settings.get("rate_limit")
        if isinstance(configured, int):
            limit = min(configured, self.limits.max_per_minute)
        else:
            limit = self.limits.per_minute
        self._tenant_limits[tenant_id] = (time.monotonic(), limit)
        return limit


class ScopedBearer(HTTPBearer):
    """The bearer security scheme that also authenticates the key and checks one scope.

    One dependency where there were three (the scheme, the principal, the scope check):
    FastAPI solves each dependency with its own walk and cache key on every request.  The
    scheme keeps ``HTTPBearer``'s name and model, so the OpenAPI document is unchanged.
    """

    def __init__(self, guard: ApiGuard, scope: str, description: str) -> None:
        super().__init__(auto_error=False, description=description, scheme_name="HTTPBearer")
        self.guard = guard
        self.scope = scope

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
        presented = presented.strip()
        if not presented or scheme.lower() != "bearer":
            raise AuthenticationRequired("send `Authorization: Bearer <API key>`")
        who = await self.guard.authenticate(request, presented)
        if not who.has(self.scope):
            raise PermissionDenied(f"this API key lacks the `{self.scope}` scope")
        return who
