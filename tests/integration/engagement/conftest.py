"""A whole Sealmail for engagement tests: the API over real HTTP (with ``/t`` and ``/u``),
a worker, a loopback MX with STARTTLS, DKIM keys published in the loopback DNS."""

from __future__ import annotations

import asyncio
import email
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm, ca, dns, mx  # noqa: F401 — fixtures
from tests.integration.portal.portal_harness import serve
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import ReceivedMessage, SmtpSink
from tests.support.waiting import wait_until

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.config import Settings
from sealmail.crypto.dkim import dns_records
from sealmail.intake.api.app import create_api
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import recipients

HTML = (
    "<html><body><p>Our spring newsletter.</p>"
    '<p><a href="https://clinic.example/news?id=7&amp;src=mail">Read more</a> or '
    '<a href="mailto:front@clinic.example">write to us</a>.</p></body></html>'
)
TARGET = "https://clinic.example/news?id=7&src=mail"


@dataclass
class Stack:
    services: Services
    settings: Settings
    tenant: TenantFixture
    sink: SmtpSink
    base_url: str

    def send(self, to: list[str], stream: str = "broadcast", **over: Any) -> str:
        body = MessageIn.model_validate(
            {
                "from": "Riverside Clinic <news@clinic.example>",
                "to": to,
                "subject": "Spring newsletter",
                "text": "Our spring newsletter. Read more at https://clinic.example/news",
                "html": HTML,
                "stream": stream,
                **over,
            }
        )
        sub = compose.from_message(body, "clinic.example", 1000)
        result, _ = self.services.messages.submit(self.tenant.principal, sub)
        return result.id

    def deliver(self, mid: str, count: int) -> list[ReceivedMessage]:
        async def go() -> int:
            transport = build_transport(self.settings)
            try:
                return await build_worker(self.services, transport, self.settings).run_until_idle(timeout=30)
            finally:
                await transport.close()

        asyncio.run(go())
        mine = f"X-Sealmail-Message-Id: {mid}".encode()
        wait_until(
            lambda: len([m for m in self.sink.messages if mine in m.data]) >= count,
            10,
            f"{count} copies of {mid} did not arrive",
        )
        return [m for m in self.sink.messages if mine in m.data]

    def events(self, mid: str, type_: str) -> list[dict[str, Any]]:
        page = self.services.messages.list_events(self.tenant.principal, message_id=mid, type_=type_)
        return list(page.data)

    def delivered_long_ago(self) -> None:
        """Move delivery times back, so a fetch now is not 'within seconds of delivery'."""
        with self.services.engine.begin() as conn:
            conn.execute(sa.update(recipients).values(updated_at=datetime.now(UTC) - timedelta(minutes=5)))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=default_context())


def html_of(m: ReceivedMessage) -> str:
    msg = email.message_from_bytes(m.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def header(m: ReceivedMessage, name: str) -> str | None:
    value = email.message_from_bytes(m.data, policy=policy.default)[name]
    return None if value is None else str(value)


def path_of(url: str, base: str) -> str:
    assert url.startswith(base), url
    return url[len(base) :]


def links(html: str, kind: str, base: str) -> list[str]:
    return [path_of(u, base) for u in re.findall(rf'"({re.escape(base)}/t/{kind}/[A-Za-z0-9_-]+)"', html)]


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:  # noqa: F811
    sink = mx.start({"127.0.0.2": {"cert": ca.issue("mx.example.net")}})["127.0.0.2"]
    dns.add("example.net", "MX", "10 mx.example.net.")
    dns.add("mx.example.net", "A", "127.0.0.2")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        tmp_path,
        db_url,
        outbound_mode="mx",
        dns_nameservers=[f"{dns.address[0]}:{dns.address[1]}"],
        mx_port=mx.port,
        tls_ca_file=ca.ca_file,
        mta_sts_enabled=False,
        smtp_hostname="out.sealmail.test",
        key_discovery="off",
        portal_base_url=base,
    )
    services = build_services(settings)
    try:
        tenant = make_tenant(services, name="Riverside Clinic")
        keys = services.identities.create_dkim_keys(tenant.id, "clinic.example", actor="test")
        for record in dns_records("clinic.example", keys):
            dns.add(record.name, record.type, record.zone_value)
        with serve(create_api(services), sock):
            yield Stack(services, settings, tenant, sink, base)
    finally:
        services.close()
