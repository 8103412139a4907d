"""Fixtures for bounce tests: the delivery pipeline (loopback DNS, MX sink) plus a gateway
whose inbound listener takes reports, and a real aiosmtplib client to send them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import sqlalchemy as sa
from tests.conftest import make_tenant
from tests.integration.delivery import conftest as delivery
from tests.integration.delivery.conftest import MxFarm
from tests.integration.delivery.test_worker import DOMAIN, Pipeline, pipeline_settings
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

from sealmail.app import build_gateway, build_report_listener, build_services
from sealmail.bounces.listener import ReportListener
from sealmail.intake.smtp import SmtpGateway
from sealmail.suppressions.service import SuppressionReason
from sealmail.suppressions.tables import suppressions

# The delivery tests' loopback DNS, test CA and MX sinks, shared rather than copied.
ca, dns, mx = delivery.ca, delivery.dns, delivery.mx

VERP_RE = re.compile(r"^b\+(rcp_[0-9a-z]{26})\.[a-z2-7]{16}@bounces\.clinic\.example$")


@dataclass
class Sent:
    """What an SMTP client got back for each command of one transaction."""

    mail: tuple[int, str]
    rcpts: list[tuple[int, str]]
    data: tuple[int, str] | None


@dataclass
class Bounces:
    pipeline: Pipeline
    gateway: SmtpGateway
    listener: ReportListener
    ca: TestCA

    def deliver(self, to: str = "patient@example.net", **over: Any) -> tuple[str, str]:
        """Send one message through the worker to the MX sink; (message id, its return path)."""
        mid = self.pipeline.send([to], **over)
        assert self.pipeline.run_worker() == 1
        received = [m for m in self.pipeline.sink.wait_for(1) if to in m.rcpt_tos]
        return mid, received[-1].mail_from

    def report(self, raw: bytes, rcpts: list[str], *, mail_from: str = "", starttls: bool = True) -> Sent:
        """Send a report to the inbound listener with a real SMTP client."""

        async def go() -> Sent:
            port = self.listener.port
            client = aiosmtplib.SMTP(
                hostname="127.0.0.1",
                port=port,
                start_tls=False,
                tls_context=self.ca.client_context(),
                timeout=10,
            )
            await client.connect()
            try:
                await client.ehlo()
                if starttls:
                    await client.starttls()
                    await client.ehlo()  # RFC 3207 §4.2: the session starts over after TLS
                mail = await client.execute_command(b"MAIL", f"FROM:<{mail_from}>".encode())
                answers = []
                for rcpt in rcpts:
                    r = await client.execute_command(b"RCPT", f"TO:<{rcpt}>".encode())
                    answers.append((r.code, r.message))
                data = None
                if any(code == 250 for code, _ in answers):
                    try:
                        r = await client.data(raw)
                        data = (r.code, r.message)
                    except aiosmtplib.SMTPDataError as exc:
                        data = (exc.code, exc.message)
                return Sent((mail.code, mail.message), answers, data)
            finally:
                client.close()

        return asyncio.run(go())

    def recipient(self, mid: str) -> dict[str, Any]:
        [rcpt] = self.pipeline.message(mid)["recipients"]
        return rcpt

    def events(self, mid: str, type_: str) -> list[dict[str, Any]]:
        page = self.pipeline.services.messages.list_events(
            self.pipeline.tenant.principal, message_id=mid, type_=type_
        )
        return list(page.data)

    def suppressions(self, address: str) -> dict[str, SuppressionReason]:
        with self.pipeline.services.engine.connect() as conn:
            rows = conn.execute(
                sa.select(suppressions.c.stream, suppressions.c.reason).where(
                    suppressions.c.tenant_id == self.pipeline.tenant.id, suppressions.c.address == address
                )
            ).all()
        return {r.stream: SuppressionReason(r.reason) for r in rows}


@pytest.fixture
def bounces(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Bounces]:
    sink = mx.start({"127.0.0.2": {"cert": ca.issue("mx1.example.net")}})["127.0.0.2"]
    dns.add(DOMAIN, "MX", "10 mx1.example.net.")
    dns.add("mx1.example.net", "A", "127.0.0.2")
    issued = ca.issue("127.0.0.1", "localhost")
    cert, key = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    settings = pipeline_settings(
        tmp_path, db_url, dns, ca, mx, smtp_inbound_port=0, smtp_tls_cert=cert, smtp_tls_key=key
    )
    services = build_services(settings)
    tenant = make_tenant(services)
    gateway = build_gateway(services, settings)
    listener = build_report_listener(services, settings)
    assert listener is not None
    gateway.start()
    listener.start()
    try:
        yield Bounces(Pipeline(services, tenant, sink, dns, settings), gateway, listener, ca)
    finally:
        listener.stop()
        gateway.stop()
        services.close()
