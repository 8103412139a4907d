"""Sender domains as one path for the CLI and the API: registration, DKIM keys, records, checks.

A sender domain is only useful once receivers can authenticate its mail: DMARC
(RFC 7489 §3.1) needs an aligned DKIM signature, so registering a domain generates its
signing keys in the same step and verifying one makes sure they exist.  Neither adapter
calls ``Tenancy.add_domain`` on its own, which is how a domain once came to be verified
but never signed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sealmail.crypto import dkim
from sealmail.errors import NotFound
from sealmail.secureline.identities import Identities
from sealmail.secureline.posture import transport_posture
from sealmail.tenancy.service import SenderDomain, Tenancy, TxtLookup


@dataclass(frozen=True, slots=True)
class DomainSetup:
    """A registered domain and the records its owner publishes."""

    domain: SenderDomain
    records: list[dkim.DnsRecord]


class SenderDomains:
    def __init__(
        self,
        tenancy: Tenancy,
        identities: Identities,
        return_path: Callable[[str], tuple[str, str] | None] = lambda _domain: None,
    ) -> None:
        self.tenancy = tenancy
        self.identities = identities
        self.return_path = return_path

    def add(self, tenant_id: str, name: str, actor: str, *, verified: bool = False) -> DomainSetup:
        row = self.tenancy.add_domain(tenant_id, name, actor, verified=verified)
        keys = self.identities.create_dkim_keys(tenant_id, row.name, actor)
        return DomainSetup(row, self._records(row.name, keys))

    def ensure_keys(self, tenant_id: str, name: str, actor: str) -> list[dkim.DkimKey]:
        """The domain's active DKIM keys, generated first when it has none (domains added
        before registration created keys)."""
        keys = self.identities.dkim_keys(tenant_id, name)
        return keys or self.identities.create_dkim_keys(tenant_id, name, actor)

    def mark_verified(self, tenant_id: str, name: str, actor: str) -> SenderDomain:
        domain = self.tenancy.domain(tenant_id, name).name
        self.ensure_keys(tenant_id, domain, actor)
        self.tenancy.mark_domain_verified(tenant_id, domain, actor)
        return self.tenancy.domain(tenant_id, domain)

    async def verify(
        self,
        tenant_id: str,
        name: str,
        actor: str,
        txt: TxtLookup,
        run: Callable[..., Awaitable[Any]],
    ) -> SenderDomain:
        """Verify ownership through DNS; ``run`` moves key generation off the event loop."""
        domain = self.tenancy.domain(tenant_id, name).name
        # Keys first: a domain must never be verified (and so accepted as a sender)
        # while it has nothing to sign with.
        await run(self.ensure_keys, tenant_id, domain, actor)
        return await self.tenancy.verify_domain(tenant_id, domain, actor, txt)

    def rotate_keys(self, tenant_id: str, name: str, actor: str) -> list[dkim.DnsRecord]:
        domain = self.tenancy.domain(tenant_id, name).name
        return self._records(domain, self.identities.create_dkim_keys(tenant_id, domain, actor))

    def records(self, tenant_id: str, name: str) -> list[dkim.DnsRecord]:
        domain = self.tenancy.domain(tenant_id, name).name
        keys = self.identities.dkim_keys(tenant_id, domain)
        if not keys:
            raise NotFound(f"{domain} has no DKIM keys yet; POST /v1/domains/{domain}/dkim")
        return self._records(domain, keys)

    async def check(
        self, tenant_id: str, name: str, resolver: dkim.TxtResolver, run: Callable[..., Awaitable[Any]]
    ) -> list[dkim.CheckResult]:
        domain = self.tenancy.domain(tenant_id, name).name
        keys = await run(self.identities.dkim_keys, tenant_id, domain)
        # DKIM, SPF, DMARC, then the recommended MTA-STS and TLS-RPT (posture.OPTIONAL).
        return [*await dkim.check_dns(domain, keys, resolver), *await transport_posture(domain, resolver)]

    def _records(self, domain: str, keys: list[dkim.DkimKey]) -> list[dkim.DnsRecord]:
        return dkim.dns_records(domain, keys, return_path=self.return_path(domain))
