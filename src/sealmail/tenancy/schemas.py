"""Response bodies of the tenancy routes (tenant, settings, domains, API keys, SMTP
credentials)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sealmail.web.models import Out


class TenantOut(Out):
    id: str
    name: str
    settings: dict[str, Any] | None


class SettingsOut(Out):
    settings: dict[str, Any] | None


class DnsRecordOut(Out):
    type: str
    name: str
    value: str


class DomainOut(Out):
    name: str
    verified: bool
    verified_at: str | None
    verification: DnsRecordOut


class DomainListOut(Out):
    data: list[DomainOut]


class ApiKeyOut(Out):
    id: str
    name: str
    scopes: list[str]
    created_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class ApiKeyListOut(Out):
    data: list[ApiKeyOut]


class NewApiKeyOut(Out):
    id: str
    key: str = Field(description="The secret; shown once.")
    scopes: list[str]
    note: str


class SmtpCredentialOut(Out):
    id: str
    username: str
    stream: str
    created_at: str | None
    revoked_at: str | None


class SmtpCredentialListOut(Out):
    data: list[SmtpCredentialOut]


class NewSmtpCredentialOut(Out):
    id: str
    username: str
    password: str = Field(description="The secret; shown once.")
    stream: str
    note: str


class DkimRecordOut(DnsRecordOut):
    purpose: str


class DkimRecordsOut(Out):
    records: list[DkimRecordOut]


class DnsCheckOut(Out):
    name: str
    purpose: str
    ok: bool
    detail: str | None
    required: bool = Field(
        True, description="false for recommendations (mta_sts, tls_rpt): they do not make `ok` false."
    )


class DomainCheckOut(Out):
    ok: bool
    checks: list[DnsCheckOut]
