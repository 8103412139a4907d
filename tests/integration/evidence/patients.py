"""Two tenants mailing patients whose MXs (loopback sinks without STARTTLS) are named per
domain: the world the patient-register tests (164.524, 164.522(b)) deliver in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from tests.conftest import TenantFixture, make_tenant
from tests.integration.delivery.conftest import MxFarm, mx_settings
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import SmtpSink

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.crypto.dkim import dns_records
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import recipients

SECRET = "Your HbA1c is 6.1"
PATIENT = "pat@home.example"


@dataclass
class World:
    services: Services
    sinks: dict[str, SmtpSink]  # by the patient's domain
    clinic: TenantFixture
    other: TenantFixture

    @property
    def sink(self) -> SmtpSink:
        return self.sinks["home.example"]

    def send(self, tenant: TenantFixture, to: str = PATIENT) -> str:
        body = MessageIn.model_validate(
            {
                "from": f"results@{tenant.domain}",
                "to": [to],
                "subject": "Results",
                "text": SECRET,
                "stream": "phi",
            }
        )
        accepted, _ = self.services.messages.submit(
            tenant.principal, compose.from_message(body, tenant.domain, 1000)
        )

        async def run() -> None:
            transport = build_transport(self.services.settings)
            try:
                await build_worker(self.services, transport).run_until_idle(timeout=60)
            finally:
                await transport.close()

        asyncio.run(run())
        return accepted.id

    def received(self, n: int) -> bytes:
        return self.sink.wait_for(n)[n - 1].data

    def method(self, message_id: str) -> tuple[str, str]:
        with self.services.engine.connect() as conn:
            row = conn.execute(
                sa.select(recipients.c.method, recipients.c.method_reason).where(
                    recipients.c.message_id == message_id
                )
            ).one()
        return str(row.method), str(row.method_reason)


@contextmanager
def patient_world(
    tmp_path: Path,
    db_url: str,
    dns: DnsServer,
    ca: TestCA,
    mx: MxFarm,
    domains: dict[str, str],
    tls: tuple[str, ...] = (),
) -> Iterator[World]:
    """``domains`` maps each patient domain to its MX's loopback address; only the MXs of the
    domains in ``tls`` have a certificate (the others offer no STARTTLS)."""
    started = mx.start({ip: ({"cert": ca.issue(f"mx.{d}")} if d in tls else {}) for d, ip in domains.items()})
    for domain, ip in domains.items():
        dns.add(domain, "MX", f"10 mx.{domain}.")
        dns.add(f"mx.{domain}", "A", ip)
    services = build_services(mx_settings(tmp_path, db_url, dns, mx, ca))
    tenants = []
    for name, domain in (("Clinic", "clinic.example"), ("Other", "other.example")):
        tenant = make_tenant(services, name, domain)
        keys = services.identities.create_dkim_keys(tenant.id, domain, actor="test")
        for record in dns_records(domain, keys):
            dns.add(record.name, record.type, record.zone_value)
        tenants.append(tenant)
    try:
        yield World(services, {d: started[ip] for d, ip in domains.items()}, *tenants)
    finally:
        services.close()
