"""REQUIRETLS and "TLS-Required: No" (RFC 8689) in the outbound transport.

Real loopback MX sinks (aiosmtpd) with STARTTLS certificates from the test CA, advertising
REQUIRETLS after STARTTLS or not; a loopback DNS server (the AD bit stands for DNSSEC) and an
HTTPS server for MTA-STS policies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.integration.delivery.conftest import MESSAGE, MxFarm
from tests.integration.delivery.test_smtp_client import DOMAIN, IP1, MX1, one_mx, sts_fetcher
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer
from tests.support.ports import unused_port

from sealmail.app import Services
from sealmail.delivery.capture_sink import CaptureSink, list_all
from sealmail.delivery.mta_sts import MtaStsFetcher
from sealmail.delivery.smtp_client import REQUIRETLS_UNSUPPORTED, OutboundTransport
from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.net.dns import Resolver

pytestmark = pytest.mark.timeout(20)

RCPT = "alice@example.org"


def send(
    dns: DnsServer,
    ca: TestCA,
    mx: MxFarm,
    *,
    policy: TlsPolicy = TlsPolicy.OPPORTUNISTIC,
    mta_sts: MtaStsFetcher | None = None,
    mail_from: str = "sender@sealmail.test",
    **options: Any,
) -> Attempt:
    """One delivery of MESSAGE to RCPT through a fresh transport; ``options`` go to ``deliver``."""

    async def go() -> Attempt:
        transport = OutboundTransport(
            ehlo_hostname="out.sealmail.test",
            resolver=Resolver(nameservers=[dns.address], timeout=2.0),
            ca_file=ca.ca_file,
            connect_timeout=5.0,
            command_timeout=5.0,
            port=mx.port,
            mta_sts=mta_sts,
        )
        try:
            [attempt] = await transport.deliver(DOMAIN, mail_from, [RCPT], MESSAGE, policy, **options)
            return attempt
        finally:
            await transport.close()

    return asyncio.run(go())


def test_requiretls_goes_to_a_dnssec_mx_that_offers_it_with_the_mail_parameter(
    dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1), "requiretls": True}})[IP1]
    one_mx(dns)
    dns.mark_secure(DOMAIN)

    attempt = send(dns, ca, mx, requiretls=True)

    assert attempt.status is AttemptStatus.DELIVERED, attempt
    assert attempt.tls.verified is True
    [received] = sink.wait_for(1)
    assert received.tls is True
    assert "REQUIRETLS" in received.mail_options


def test_requiretls_to_a_server_without_it_fails_permanently_with_5_7_30(
    dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1)}})[IP1]  # verified TLS, but no REQUIRETLS
    one_mx(dns)
    dns.mark_secure(DOMAIN)

    attempt = send(dns, ca, mx, requiretls=True)

    assert attempt.status is AttemptStatus.FAILED
    assert attempt.reason == REQUIRETLS_UNSUPPORTED
    assert attempt.enhanced_code == "5.7.30"
    assert "REQUIRETLS support required" in attempt.detail
    assert sink.connections == 1  # it looked (EHLO after STARTTLS) …
    assert sink.messages == []  # … and sent nothing


def test_requiretls_refuses_an_unverifiable_certificate(dns: DnsServer, ca: TestCA, mx: MxFarm) -> None:
    sink = mx.start({IP1: {"cert": ca.issue_wrong_name(), "requiretls": True}})[IP1]
    one_mx(dns)
    dns.mark_secure(DOMAIN)

    attempt = send(dns, ca, mx, requiretls=True)

    assert attempt.status is AttemptStatus.FAILED
    assert attempt.enhanced_code == "5.7.30"
    assert sink.messages == []


def test_requiretls_never_connects_to_an_mx_it_cannot_authenticate(
    dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    # RFC 8689 §4.2.1: no DNSSEC on the MX and no MTA-STS policy: the MX name may be forged.
    sink = mx.start({IP1: {"cert": ca.issue(MX1), "requiretls": True}})[IP1]
    one_mx(dns)

    attempt = send(dns, ca, mx, requiretls=True)

    assert attempt.status is AttemptStatus.FAILED
    assert attempt.enhanced_code == "5.7.30"
    assert "neither DNSSEC-validated nor authorised by an MTA-STS" in attempt.detail
    assert sink.connections == 0


def test_requiretls_accepts_an_mx_authorised_by_mta_sts(dns: DnsServer, ca: TestCA, mx: MxFarm) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1), "requiretls": True}})[IP1]
    one_mx(dns)
    with HttpsServer(ca.issue(f"mta-sts.{DOMAIN}")) as web:
        fetcher = sts_fetcher(dns, ca, web, f"version: STSv1\nmode: enforce\nmx: {MX1}\nmax_age: 86400\n")
        attempt = send(dns, ca, mx, mta_sts=fetcher, requiretls=True)

    assert attempt.status is AttemptStatus.DELIVERED, attempt
    [received] = sink.wait_for(1)
    assert "REQUIRETLS" in received.mail_options


def test_without_requiretls_the_parameter_is_not_sent(dns: DnsServer, ca: TestCA, mx: MxFarm) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1), "requiretls": True}})[IP1]
    one_mx(dns)

    attempt = send(dns, ca, mx, policy=TlsPolicy.REQUIRE_VERIFIED)

    assert attempt.status is AttemptStatus.DELIVERED
    [received] = sink.wait_for(1)
    assert "REQUIRETLS" not in received.mail_options


def test_relaxed_delivery_ignores_the_destinations_mta_sts(dns: DnsServer, ca: TestCA, mx: MxFarm) -> None:
    """RFC 8689 §5: with "TLS-Required: No" honoured, an MTA-STS enforce policy the MX fails
    (a certificate for another name) no longer holds the message."""
    sink = mx.start({IP1: {"cert": ca.issue_wrong_name()}})[IP1]
    one_mx(dns)
    policy = "version: STSv1\nmode: enforce\nmx: *.example.org\nmax_age: 86400\n"
    with HttpsServer(ca.issue(f"mta-sts.{DOMAIN}")) as web:
        strict = send(dns, ca, mx, mta_sts=sts_fetcher(dns, ca, web, policy))
        relaxed = send(dns, ca, mx, mta_sts=sts_fetcher(dns, ca, web, policy), relaxed=True)

    assert strict.status is AttemptStatus.DEFERRED and strict.reason == "tls_required"
    assert relaxed.status is AttemptStatus.DELIVERED, relaxed
    assert relaxed.tls.verified is False  # still encrypted where offered, just not verified
    assert len(sink.wait_for(1)) == 1


def test_requiretls_outranks_relaxed(dns: DnsServer, ca: TestCA, mx: MxFarm) -> None:
    sink = mx.start({IP1: {"cert": ca.issue_wrong_name()}})[IP1]
    one_mx(dns)
    dns.mark_secure(DOMAIN)

    attempt = send(dns, ca, mx, requiretls=True, relaxed=True)

    assert attempt.status is AttemptStatus.FAILED and attempt.enhanced_code == "5.7.30"
    assert sink.messages == []


def _relay(address: tuple[str, int], ca: TestCA, dns: DnsServer, **options: Any) -> Attempt:
    async def go() -> Attempt:
        transport = OutboundTransport(
            ehlo_hostname="out.sealmail.test",
            resolver=Resolver(nameservers=[dns.address], timeout=2.0),
            ca_file=ca.ca_file,
            connect_timeout=5.0,
            command_timeout=5.0,
            relay_all_to=address,
        )
        try:
            [attempt] = await transport.deliver(
                "gmail.example",
                "sender@sealmail.test",
                ["x@gmail.example"],
                MESSAGE,
                TlsPolicy.REQUIRE,
                **options,
            )
            return attempt
        finally:
            await transport.close()

    return asyncio.run(go())


def test_the_capture_sink_is_a_requiretls_hop_over_verified_tls(
    services: Services, ca: TestCA, dns: DnsServer, tmp_path: Path
) -> None:
    issued = ca.issue("127.0.0.1")
    cert, key = tmp_path / "dev.crt", tmp_path / "dev.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    sink = None
    for _ in range(5):  # aiosmtpd's controller cannot bind port 0; another test may take a port first
        candidate = CaptureSink(
            services.engine, "127.0.0.1", unused_port(), cert, key, "capture.sealmail.test"
        )
        try:
            candidate.start()
        except (OSError, RuntimeError):
            continue
        sink = candidate
        break
    assert sink is not None
    try:
        attempt = _relay(("127.0.0.1", sink.port), ca, dns, requiretls=True)
    finally:
        sink.stop()

    assert attempt.status is AttemptStatus.DELIVERED, attempt
    assert attempt.tls.verified is True
    [captured] = list_all(services.engine, 10)
    assert captured.rcpt_to == ("x@gmail.example",)


def test_a_relay_without_requiretls_fails_the_message(dns: DnsServer, ca: TestCA, mx: MxFarm) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(IP1)}})[IP1]

    attempt = _relay((IP1, mx.port), ca, dns, requiretls=True)

    assert attempt.status is AttemptStatus.FAILED and attempt.enhanced_code == "5.7.30"
    assert sink.messages == []


def test_a_bounce_asks_for_requiretls_where_offered_and_is_not_lost_where_not(
    dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    """RFC 8689 §4.3: a null reverse-path REQUIRETLS message is a bounce; it carries the
    parameter to a hop that offers it and still goes to one that does not."""
    sink = mx.start({IP1: {"cert": ca.issue(MX1)}})[IP1]  # no REQUIRETLS, no DNSSEC
    one_mx(dns)

    attempt = send(dns, ca, mx, policy=TlsPolicy.REQUIRE, mail_from="", requiretls=True)

    assert attempt.status is AttemptStatus.DELIVERED, attempt
    [received] = sink.wait_for(1)
    assert "REQUIRETLS" not in received.mail_options


def test_a_bounce_to_an_unverifiable_hop_still_goes(
    dns: DnsServer, ca: TestCA, untrusted_ca: TestCA, mx: MxFarm
) -> None:
    sink = mx.start({IP1: {"cert": untrusted_ca.issue(MX1), "requiretls": True}})[IP1]
    one_mx(dns)

    attempt = send(dns, ca, mx, mail_from="", requiretls=True)

    assert attempt.status is AttemptStatus.DELIVERED, attempt
    [received] = sink.wait_for(1)
    assert "REQUIRETLS" not in received.mail_options  # the chain was not verified: not claimed
