"""RFC 8689 through the whole pipeline: accept (as the SMTP gateway stores it) → worker → MX.

Loopback MX sinks over STARTTLS with the test CA, some advertising REQUIRETLS; a loopback DNS
server marks the MX records DNSSEC-validated (AD bit) and publishes TLSA records; bounces go
back as DSNs through the same queue.  SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import SmtpSink

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.domain.addresses import parse_address
from sealmail.domain.intake_limits import IntakeLimits
from sealmail.domain.tls_policy import Stream
from sealmail.messages.compose import submission_from_raw
from sealmail.messages.dsn import DsnSender
from sealmail.store.tables import attempts, recipients
from sealmail.tlsrpt.service import TlsReports

pytestmark = pytest.mark.timeout(60)

RT_IP, PLAIN_IP, DANE_IP, BAD_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


@dataclass
class World:
    services: Services
    tenant: TenantFixture
    sinks: dict[str, SmtpSink]

    def accept(
        self, to: str, *, requiretls: bool = False, header: str = "", stream: Stream = Stream.TRANSACTIONAL
    ) -> str:
        raw = (
            f"From: Clinic <noreply@clinic.example>\r\nTo: {to}\r\nSubject: Appointment\r\n{header}"
            "Date: Tue, 01 Apr 2025 09:00:00 +0000\r\nMessage-ID: <rt-1@clinic.example>\r\n\r\n"
            "See you on Tuesday.\r\n"
        ).encode()
        sub = submission_from_raw(
            raw,
            "noreply@clinic.example",
            (parse_address(to, "rcpt_to"),),
            source="smtp",
            message_id_domain="clinic.example",
            limits=IntakeLimits(),
            requiretls=requiretls,
            stream=stream,
        )
        result, _ = self.services.messages.submit(self.tenant.principal, sub)
        return result.id

    def deliver(self, passes: int = 1) -> None:
        async def go() -> None:
            transport = build_transport(self.services.settings)
            try:
                worker = build_worker(self.services, transport, name="w-rt")
                worker.dsn = DsnSender(self.services.messages, "out.sealmail.test")
                for _ in range(passes):
                    await worker.run_until_idle(timeout=30)
            finally:
                await transport.close()

        asyncio.run(go())

    def recipient(self, mid: str) -> Any:
        with self.services.engine.connect() as conn:
            return conn.execute(sa.select(recipients).where(recipients.c.message_id == mid)).one()

    def attempts(self, mid: str) -> list[Any]:
        with self.services.engine.connect() as conn:
            query = sa.select(attempts).where(attempts.c.message_id == mid).order_by(attempts.c.finished_at)
            return list(conn.execute(query))


@pytest.fixture
def world(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, untrusted_ca: TestCA, mx: MxFarm
) -> Iterator[World]:
    dane_cert = ca.issue("mx.dane.example")
    sinks = mx.start(
        {
            RT_IP: {"cert": ca.issue("mx.rt.example"), "requiretls": True},
            PLAIN_IP: {"cert": ca.issue("mx.plain.example")},
            DANE_IP: {"cert": dane_cert},
            BAD_IP: {"cert": untrusted_ca.issue("mx.bad.example")},  # no verifiable certificate
        }
    )
    for name, ip in (("rt", RT_IP), ("plain", PLAIN_IP), ("dane", DANE_IP), ("bad", BAD_IP)):
        dns.add(f"{name}.example", "MX", f"10 mx.{name}.example.")
        dns.add(f"mx.{name}.example", "A", ip)
    dns.add("clinic.example", "MX", "10 mx.rt.example.")  # where DSNs go
    # A DANE-EE record that does not match the certificate: DANE fails at this MX.
    dns.add(f"_{mx.port}._tcp.mx.dane.example", "TLSA", "3 1 1 " + "00" * 32)
    dns.mark_secure("rt.example", "plain.example", "dane.example", f"_{mx.port}._tcp.mx.dane.example")
    settings = make_settings(
        tmp_path,
        db_url,
        outbound_mode="mx",
        dns_nameservers=[f"{dns.address[0]}:{dns.address[1]}"],
        mx_port=mx.port,
        tls_ca_file=ca.ca_file,
        mta_sts_enabled=False,
        dane_enabled=True,
        key_discovery="off",
        smtp_hostname="out.sealmail.test",
        tls_policy_transactional="opportunistic",
        verp_enabled=False,
    )
    services = build_services(settings)
    yield World(services, make_tenant(services), sinks)
    services.close()


def test_requiretls_message_reaches_a_requiretls_hop_with_the_parameter(world: World) -> None:
    mid = world.accept("pat@rt.example", requiretls=True)
    world.deliver()

    [received] = world.sinks[RT_IP].wait_for(1)
    assert "REQUIRETLS" in received.mail_options and received.tls
    rcpt = world.recipient(mid)
    assert rcpt.status == "delivered"
    assert "REQUIRETLS (RFC 8689)" in rcpt.method_reason


def test_requiretls_message_to_a_hop_without_it_bounces_with_5_7_30_and_a_dsn(world: World) -> None:
    mid = world.accept("pat@plain.example", requiretls=True)
    world.deliver(passes=2)  # the second pass delivers the DSN

    assert world.sinks[PLAIN_IP].messages == []  # never handed over, not even as a portal notice
    rcpt = world.recipient(mid)
    assert rcpt.status == "bounced"
    [attempt] = world.attempts(mid)
    assert (attempt.status, attempt.reason, attempt.enhanced_code) == (
        "failed",
        "requiretls_unsupported",
        "5.7.30",
    )
    [dsn] = world.sinks[RT_IP].wait_for(1)
    assert dsn.rcpt_tos == ("noreply@clinic.example",)
    assert b"5.7.30" in dsn.data and b"REQUIRETLS support required" in dsn.data
    # RFC 8689 §4.3: the bounce of a REQUIRETLS message asks for REQUIRETLS too.
    assert "REQUIRETLS" in dsn.mail_options


def test_tls_required_no_is_honoured_on_a_plain_path_and_says_so(world: World) -> None:
    # DANE fails at this MX: without the header the destination's policy would hold the message.
    mid = world.accept("pat@dane.example", header="TLS-Required: No\r\n")
    world.deliver()

    [received] = world.sinks[DANE_IP].wait_for(1)
    assert b"See you on Tuesday." in received.data
    assert b"TLS-Required: No" in received.data  # carried on (RFC 8689 §5)
    rcpt = world.recipient(mid)
    assert rcpt.status == "delivered" and rcpt.method == "tls"
    assert "TLS-Required: No honoured" in rcpt.method_reason


def test_without_the_header_dane_holds_the_message(world: World) -> None:
    mid = world.accept("pat@dane.example")
    world.deliver()

    assert world.sinks[DANE_IP].messages == []
    assert world.recipient(mid).status == "deferred"


def test_a_tls_failure_the_portal_covered_is_still_counted_by_tlsrpt(world: World) -> None:
    """The hidden case of issue 12: verified TLS fails, the PHI-free portal notice goes
    instead; the failed session stays on the record and in the day's TLS report."""
    mid = world.accept("pat@bad.example", stream=Stream.PHI)
    world.deliver()

    [notice] = world.sinks[BAD_IP].wait_for(1)
    assert b"See you on Tuesday." not in notice.data  # a PHI-free notice, not the message
    rcpt = world.recipient(mid)
    assert rcpt.status == "delivered" and rcpt.method == "portal"
    tried = world.attempts(mid)
    assert tried[0].reason == "tls_required"
    assert tried[-1].status == "delivered"
    today = TlsReports(world.services.engine).day(datetime.now(UTC).date())
    [day] = [d for d in today if d.domain == "bad.example"]
    assert sum(day.failures.values()) == 1


def test_tls_required_no_is_not_honoured_on_the_phi_stream(world: World) -> None:
    mid = world.accept("pat@bad.example", header="TLS-Required: No\r\n", stream=Stream.PHI)
    world.deliver()

    [notice] = world.sinks[BAD_IP].wait_for(1)
    assert b"See you on Tuesday." not in notice.data
    rcpt = world.recipient(mid)
    assert rcpt.method == "portal"
    assert "TLS-Required: No not honoured: the phi stream requires TLS" in rcpt.method_reason


def test_a_tls_required_no_that_is_not_honoured_is_not_passed_on(world: World) -> None:
    """PHI stream, verified TLS available: the message goes as usual, and the header that
    would let the recipient's own relays drop TLS is removed (the body is untouched)."""
    header = "TLS-Required: No\r\n"
    mid = world.accept("pat@rt.example", header=header, stream=Stream.PHI)
    world.deliver()

    [received] = world.sinks[RT_IP].wait_for(1)
    assert b"TLS-Required" not in received.data
    assert b"See you on Tuesday." in received.data and b"Subject: Appointment" in received.data
    rcpt = world.recipient(mid)
    assert rcpt.method == "tls"
    assert "TLS-Required: No not honoured: the phi stream requires TLS" in rcpt.method_reason
