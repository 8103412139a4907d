"""Fixtures for outbound-delivery integration tests: DNS, test CAs, MX sinks, transports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import make_settings
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.scripted_mx import Scripted
from tests.support.smtp_sink import SmtpSink

from sealmail.config import Settings
from sealmail.delivery.mta_sts import MtaStsFetcher
from sealmail.delivery.smtp_client import OutboundTransport
from sealmail.domain.outcomes import Attempt
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.net.dns import Resolver

MESSAGE = (
    b"From: sender@sealmail.test\r\nTo: someone@example.org\r\n"
    b"Subject: test\r\nMessage-ID: <1@sealmail.test>\r\n\r\nHello.\r\n.leading dot\r\n"
)
# Nothing listens here: connecting gives "connection refused".
REFUSING_IP = "127.0.0.250"


@pytest.fixture(scope="session")
def ca() -> Iterator[TestCA]:
    """The CA the transport trusts (its PEM is the transport's ``ca_file``)."""
    with TestCA() as test_ca:
        yield test_ca


@pytest.fixture(scope="session")
def untrusted_ca() -> Iterator[TestCA]:
    """A CA nobody trusts, for 'unknown issuer' certificates."""
    with TestCA() as test_ca:
        yield test_ca


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


class MxFarm:
    """SMTP sinks on several 127.0.0.x addresses sharing one port (the transport's MX port)."""

    def __init__(self) -> None:
        self.port = 0
        self.sinks: dict[str, SmtpSink] = {}

    def start(self, specs: dict[str, dict[str, Any]]) -> dict[str, SmtpSink]:
        """Start one sink per IP in ``specs`` (kwargs for SmtpSink) on a common free port."""
        for _ in range(20):
            started: list[SmtpSink] = []
            try:
                for ip, kwargs in specs.items():
                    sink = SmtpSink(ip, self.port, **kwargs).start()
                    started.append(sink)
                    self.port = sink.port
            except OSError:
                for sink in started:
                    sink.stop()
                self.port = 0 if not self.sinks else self.port
                continue
            self.sinks.update({sink.host: sink for sink in started})
            return {sink.host: sink for sink in started}
        raise RuntimeError("could not find a port free on every MX address")

    def stop(self) -> None:
        for sink in self.sinks.values():
            sink.stop()


@pytest.fixture
def mx() -> Iterator[MxFarm]:
    farm = MxFarm()
    yield farm
    farm.stop()


class ScriptedMx:
    """Scripted servers as ``mx1.example.org`` (127.0.0.2), the only MX of example.org."""

    HOST, IP = "mx1.example.org", "127.0.0.2"

    def __init__(self, mx: MxFarm) -> None:
        self.mx = mx
        self.servers: list[Scripted] = []

    def start(self, script: dict[bytes, list[bytes]], *, pace: float = 0.0) -> Scripted:
        server = Scripted(script, self.IP, pace=pace)
        self.servers.append(server)
        self.mx.port = server.port  # the transport's MX port
        return server


@pytest.fixture
def scripted(dns: DnsServer, mx: MxFarm) -> Iterator[ScriptedMx]:
    dns.add("example.org", "MX", f"10 {ScriptedMx.HOST}.")
    dns.add(ScriptedMx.HOST, "A", ScriptedMx.IP)
    farm = ScriptedMx(mx)
    yield farm
    for server in farm.servers:
        server.close()


DeliverFn = Callable[..., list[Attempt]]


@pytest.fixture
def deliver(dns: DnsServer, ca: TestCA, mx: MxFarm) -> DeliverFn:
    """Run one or more deliveries through a fresh transport, then close it.

    ``deliver(domain, rcpts, policy, times=1, sts=False, **transport_kwargs)``
    returns the attempts of the last delivery.
    """

    def run(
        domain: str,
        recipients: list[str],
        policy: TlsPolicy = TlsPolicy.OPPORTUNISTIC,
        *,
        times: int = 1,
        message: bytes = MESSAGE,
        mta_sts: MtaStsFetcher | None = None,
        **kwargs: Any,
    ) -> list[Attempt]:
        async def go() -> list[Attempt]:
            resolver = Resolver(nameservers=[dns.address], timeout=2.0)
            options: dict[str, Any] = {
                "ehlo_hostname": "out.sealmail.test",
                "resolver": resolver,
                "ca_file": ca.ca_file,
                "connect_timeout": 5.0,
                "command_timeout": 5.0,
                "port": mx.port,
                "mta_sts": mta_sts,
            }
            options.update(kwargs)
            transport = OutboundTransport(**options)
            try:
                attempts: list[Attempt] = []
                for _ in range(times):
                    attempts = await transport.deliver(
                        domain, "sender@sealmail.test", recipients, message, policy
                    )
                return attempts
            finally:
                await transport.close()

        return asyncio.run(go())

    return run


def mx_settings(home: Path, db_url: str, dns: DnsServer, mx: MxFarm, ca: TestCA, **over: Any) -> Settings:
    """Settings for a whole Sealmail delivering through the loopback DNS to the MX farm."""
    values: dict[str, Any] = {
        "outbound_mode": "mx",
        "dns_nameservers": [f"{dns.address[0]}:{dns.address[1]}"],
        "mx_port": mx.port,
        "tls_ca_file": ca.ca_file,
        "mta_sts_enabled": False,
        "smtp_hostname": "out.sealmail.test",
        "key_discovery": "off",
    }
    return make_settings(home, db_url, **{**values, **over})
