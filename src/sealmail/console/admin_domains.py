"""Sender domains in the console: each domain's posture — DKIM, SPF, DMARC (required) and
MTA-STS, TLS-RPT (recommended) — green, or what to publish, looked up live in DNS.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.crypto.dkim import TxtResolver
from sealmail.errors import NotFound
from sealmail.secureline.posture import OPTIONAL
from sealmail.secureline.sender_domains import SenderDomains
from sealmail.tenancy.service import Tenancy
from sealmail.users.roles import Permission


def domains_section(
    tenancy: Tenancy, sender_domains: SenderDomains, resolver: Callable[[], TxtResolver]
) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        @app.get("/domains")
        def domains(request: Request) -> Response:
            who = kit.signed_in(request, Permission.MANAGE_SETTINGS)
            if isinstance(who, Response):
                return who
            rows = tenancy.list_domains(who.tenant_id)
            return kit.render(
                request, "admin_domains.html", title="Domains", who=who, rows=rows, csrf=kit.csrf(request)
            )

        @app.get("/domains/{name}")
        async def posture(request: Request, name: str) -> Response:
            who = await run_in_threadpool(kit.signed_in, request, Permission.MANAGE_SETTINGS)
            if isinstance(who, Response):
                return who
            domain = (await run_in_threadpool(tenancy.domain, who.tenant_id, name[:253])).name
            try:
                records = await run_in_threadpool(sender_domains.records, who.tenant_id, domain)
            except NotFound:
                records = []
            checks = await sender_domains.check(who.tenant_id, domain, resolver(), run_in_threadpool)
            return kit.render(
                request, "admin_domain.html", title=f"Domain {domain}", who=who, domain=domain,
                records=records, checks=checks, optional=OPTIONAL, csrf=kit.csrf(request),
            )  # fmt: skip

    return ConsoleSection(nav=[("/domains", "Domains", Permission.MANAGE_SETTINGS)], mount=mount)
