"""One real delivery over verified TLS to a loopback MX, for the evidence tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from tests.conftest import TenantFixture, make_tenant
from tests.integration.delivery.conftest import MxFarm, mx_settings
from tests.support.ca import IssuedCert, TestCA
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import ReceivedMessage

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.crypto.dkim import dns_records
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import recipients


@dataclass
class Delivered:
    services: Services
    tenant: TenantFixture
    message_id: str
    recipient_id: str
    received: ReceivedMessage
    cert: IssuedCert


def deliver_one(
    home: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm, pgp_cert: bytes | None = None
) -> Delivered:
    """Accept one PHI message for tia@tls.example and let the real worker deliver it
    (OpenPGP-encrypted when ``pgp_cert`` is her certificate, else over verified TLS)."""
    cert = ca.issue("mx.tls.example")
    sinks = mx.start({"127.0.0.4": {"cert": cert}})
    dns.add("tls.example", "MX", "10 mx.tls.example.")
    dns.add("mx.tls.example", "A", "127.0.0.4")
    services = build_services(mx_settings(home, db_url, dns, mx, ca))
    tenant = make_tenant(services)
    keys = services.identities.create_dkim_keys(tenant.id, "clinic.example", actor="test")
    for record in dns_records("clinic.example", keys):
        dns.add(record.name, record.type, record.zone_value)
    if pgp_cert is not None:
        services.keydir.upload(tenant.id, pgp_cert, "test")
    body = MessageIn.model_validate(
        {
            "from": "Results <results@clinic.example>",
            "to": ["tia@tls.example"],
            "subject": "Your results",
            "text": "Benign.",
            "stream": "phi",
        }
    )
    accepted, _ = services.messages.submit(
        tenant.principal, compose.from_message(body, "clinic.example", 1000)
    )
    message_id = accepted.id

    async def run() -> None:
        transport = build_transport(services.settings)
        try:
            await build_worker(services, transport).run_until_idle(timeout=60)
        finally:
            await transport.close()

    asyncio.run(run())
    [received] = sinks["127.0.0.4"].wait_for(1)
    recipient_id = _recipient(services, message_id)
    return Delivered(services, tenant, message_id, recipient_id, received, cert)


def _recipient(services: Services, message_id: str) -> str:
    with services.engine.connect() as conn:
        return str(
            conn.execute(sa.select(recipients.c.id).where(recipients.c.message_id == message_id)).scalar_one()
        )


def cli_env(services: Services) -> dict[str, str]:
    """The environment that points the ``sealmail`` CLI at this installation."""
    return {
        "SEALMAIL_HOME": str(services.settings.home),
        "SEALMAIL_DATABASE_URL": services.settings.database_url,
    }
