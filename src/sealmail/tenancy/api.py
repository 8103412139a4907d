"""Management endpoints: tenant settings, sender domains, API keys, SMTP credentials.

All need the ``admin`` scope; every change is audited by the service it calls. Secrets
(API keys, SMTP passwords) appear once, in the response that creates them.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from sealmail.domain.tls_policy import STREAM_MINIMUM, Stream, TlsPolicy
from sealmail.errors import ServiceUnavailable, ValidationFailed
from sealmail.net.dns import DnsLookupError, Resolver
from sealmail.tenancy.decisions import REASON_DOC, Decisions, require_reason
from sealmail.tenancy.schemas import (
    ApiKeyListOut,
    ApiKeyOut,
    DomainListOut,
    DomainOut,
    NewApiKeyOut,
    NewSmtpCredentialOut,
    SettingsOut,
    SmtpCredentialListOut,
    SmtpCredentialOut,
    TenantOut,
)
from sealmail.tenancy.service import SCOPES, Principal, SenderDomain, Tenancy, TxtLookup


class TrackingIn(BaseModel):
    """Open and click tracking (engagement/policy.py); off unless turned on here."""

    model_config = ConfigDict(extra="forbid")

    opens: bool = Field(False, description="Add an open-tracking pixel to HTML parts.")
    clicks: bool = Field(False, description="Send HTML links through the click redirector.")
    streams: list[Stream] | None = Field(
        None,
        min_length=1,
        max_length=3,
        description="Streams tracked; when left out, transactional and broadcast. The phi "
        "stream is tracked only when listed here.",
    )


class MarketingIn(BaseModel):
    """Marketing settings (marketing/compliance.py and breaker.py); ``null`` removes one."""

    model_config = ConfigDict(extra="forbid")

    postal_address: str | None = Field(
        None,
        min_length=10,
        max_length=500,
        description="The sender's physical postal address that CAN-SPAM (16 CFR 316.5) requires "
        "in every marketing and fundraising message; templates show it as {{ postal_address }}.",
    )
    complaint_rate: float | None = Field(
        None, gt=0, le=1, description="Pause a campaign over this complaint rate (default 0.003)."
    )
    complaint_min_sent: int | None = Field(
        None, ge=1, le=10_000_000, description="...once at least this many are sent (default 1000)."
    )


class TenantSettingsIn(BaseModel):
    """A partial update; ``null`` removes a setting (the stream default applies again)."""

    model_config = ConfigDict(extra="forbid")

    tls_policy: dict[Stream, TlsPolicy | None] | None = Field(
        None, description='Per-stream TLS policy, e.g. {"phi": "dane"}.'
    )
    tracking: TrackingIn | None = Field(
        None, description='Engagement tracking, e.g. {"opens": true, "clicks": true}.'
    )
    marketing: MarketingIn | None = Field(
        None, description='Marketing settings, e.g. {"postal_address": "1 Main St, Springfield, IL 62701"}.'
    )
    rate_limit: int | None = Field(
        None,
        ge=1,
        description="Requests a minute per API key of this tenant; `null` restores the default. "
        "At most the operator's `api_rate_limit_max_per_minute`.",
    )
    reason: str | None = Field(None, max_length=2000, description=REASON_DOC)


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=3, max_length=253)


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, description=f"Any of {', '.join(SCOPES)}.")


class SmtpCredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream: Stream = Stream.TRANSACTIONAL


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _domain(row: SenderDomain) -> dict[str, Any]:
    return {
        "name": row.name,
        "verified": row.verified_at is not None,
        "verified_at": _iso(row.verified_at),
        "verification": {
            "type": "TXT",
            "name": f"_sealmail.{row.name}",
            "value": f"sealmail-verification={row.verification_token}",
        },
    }


def _rate_limit(value: int | None, ceiling: int) -> int | None:
    if value is not None and value > ceiling:
        message = f"at most {ceiling} requests a minute (api_rate_limit_max_per_minute)"
        raise ValidationFailed([{"field": "rate_limit", "message": message}])
    return value


class SenderDomainsPort(Protocol):
    """The sender-domain use cases (``secureline.sender_domains``, which builds on tenancy)."""

    def add(self, tenant_id: str, name: str, actor: str, *, verified: bool = False) -> Any: ...
    async def verify(
        self, tenant_id: str, name: str, actor: str, txt: TxtLookup, run: Callable[..., Awaitable[Any]]
    ) -> SenderDomain: ...


class TenancyServices(Protocol):
    """What the management routes are handed by the composition root."""

    @property
    def tenancy(self) -> Tenancy: ...
    @property
    def sender_domains(self) -> SenderDomainsPort: ...


def router(services: TenancyServices, admin: Any, resolver: Resolver, rate_limit_ceiling: int) -> APIRouter:
    """``rate_limit_ceiling``: the most requests a minute a tenant may give its keys."""
    r = APIRouter(prefix="/v1", tags=["administration"])
    tenancy = services.tenancy
    Admin = Annotated[Principal, admin]

    @r.get("/tenant", response_model=TenantOut)
    def get_tenant(who: Admin) -> dict[str, Any]:
        row = tenancy.get_tenant(who.tenant_id)
        return {"id": row.id, "name": row.name, "settings": row.settings}

    @r.patch("/tenant/settings", response_model=SettingsOut)
    def patch_settings(body: TenantSettingsIn, who: Admin) -> dict[str, Any]:
        current = tenancy.get_tenant(who.tenant_id).settings
        changes: dict[str, Any] = {}
        if body.tls_policy is not None:
            merged = dict(current.get("tls_policy", {}))
            for stream, level in body.tls_policy.items():
                if level is None:
                    merged.pop(str(stream), None)
                    continue
                if level.rank < STREAM_MINIMUM[stream].rank:
                    raise ValidationFailed(
                        [
                            {
                                "field": f"tls_policy.{stream}",
                                "message": f"{level} is below the {stream} stream's minimum "
                                f"({STREAM_MINIMUM[stream]})",
                            }
                        ]
                    )
                merged[str(stream)] = str(level)
            changes["tls_policy"] = merged or None
        if body.tracking is not None:
            tracking = body.tracking.model_dump(mode="json", exclude_none=True)
            if "streams" in tracking:
                tracking["streams"] = sorted(set(tracking["streams"]))
            changes["tracking"] = tracking
        if body.marketing is not None:
            # Merged key by key: setting the breaker must not drop the postal address.
            marketing = {
                **current.get("marketing", {}),
                **body.marketing.model_dump(mode="json", exclude_unset=True),
            }
            changes["marketing"] = {k: v for k, v in marketing.items() if v is not None} or None
        if "rate_limit" in body.model_fields_set:
            changes["rate_limit"] = _rate_limit(body.rate_limit, rate_limit_ceiling)
        require_reason(current, {**current, **changes}, body.reason)
        also = Decisions(tenancy.engine).recorder(body.reason or "")
        settings = tenancy.update_settings(who.tenant_id, changes, actor=who.credential_id, also=also)
        return {"settings": settings}

    @r.get("/domains", response_model=DomainListOut)
    def list_domains(who: Admin) -> dict[str, Any]:
        return {"data": [_domain(d) for d in tenancy.list_domains(who.tenant_id)]}

    @r.post("/domains", status_code=201, response_model=DomainOut)
    def add_domain(body: DomainIn, who: Admin) -> dict[str, Any]:
        # One path with `sealmail domains add`: the domain gets its DKIM keys here too.
        setup = services.sender_domains.add(who.tenant_id, body.name, actor=who.credential_id)
        return _domain(setup.domain)

    @r.post("/domains/{name}/verify", response_model=DomainOut)
    async def verify_domain(name: str, who: Admin) -> dict[str, Any]:
        row = await services.sender_domains.verify(
            who.tenant_id, name, who.credential_id, txt, run_in_threadpool
        )
        return _domain(row)

    async def txt(owner: str) -> list[str]:
        try:
            return await resolver.txt(owner)
        except DnsLookupError as exc:
            # A resolver failure is nobody's mistake and passes: 503 says try again (RFC 9110
            # §15.6.4), where an unhandled error would answer 500.
            raise ServiceUnavailable(
                f"{exc}; check that the domain's nameservers answer, then try again"
            ) from exc

    @r.get("/api-keys", response_model=ApiKeyListOut)
    def list_keys(who: Admin) -> ApiKeyListOut:
        return ApiKeyListOut(data=[ApiKeyOut.of(k) for k in tenancy.list_api_keys(who.tenant_id)])

    @r.post("/api-keys", status_code=201, response_model=NewApiKeyOut)
    async def create_key(body: ApiKeyIn, who: Admin) -> dict[str, Any]:
        key_id, secret = await run_in_threadpool(
            tenancy.create_api_key, who.tenant_id, body.name, body.scopes, who.credential_id
        )
        return {
            "id": key_id,
            "key": secret,
            "scopes": sorted(set(body.scopes)),
            "note": "store this key now; it is not shown again",
        }

    @r.delete("/api-keys/{key_id}", status_code=204)
    def revoke_key(key_id: str, who: Admin) -> None:
        tenancy.revoke_api_key(who.tenant_id, key_id, actor=who.credential_id)

    @r.get("/smtp-credentials", response_model=SmtpCredentialListOut)
    def list_smtp(who: Admin) -> SmtpCredentialListOut:
        found = tenancy.list_smtp_credentials(who.tenant_id)
        return SmtpCredentialListOut(data=[SmtpCredentialOut.of(c) for c in found])

    @r.post("/smtp-credentials", status_code=201, response_model=NewSmtpCredentialOut)
    async def create_smtp(body: SmtpCredentialIn, who: Admin) -> dict[str, Any]:
        cred_id, user, password = await run_in_threadpool(
            tenancy.create_smtp_credential, who.tenant_id, who.credential_id, body.stream
        )
        return {
            "id": cred_id,
            "username": user,
            "password": password,
            "stream": str(body.stream),
            "note": "store this password now; it is not shown again",
        }

    @r.delete("/smtp-credentials/{cred_id}", status_code=204)
    def revoke_smtp(cred_id: str, who: Admin) -> None:
        tenancy.revoke_smtp_credential(who.tenant_id, cred_id, actor=who.credential_id)

    return r
