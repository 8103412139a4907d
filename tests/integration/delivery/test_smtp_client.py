"""OutboundTransport against real loopback SMTP, DNS and HTTPS servers."""

from __future__ import annotations

import pytest
from tests.integration.delivery.conftest import REFUSING_IP, DeliverFn, MxFarm
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer

from sealmail.delivery.mta_sts import MtaStsFetcher
from sealmail.delivery.smtp_client import SmartHost
from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy, VerifiedBy
from sealmail.net.dane import tlsa_association_data
from sealmail.net.dns import Resolver

pytestmark = pytest.mark.timeout(20)

DOMAIN = "example.org"
MX1, MX2 = "mx1.example.org", "mx2.example.org"
IP1, IP2 = "127.0.0.2", "127.0.0.3"


def one_mx(dns: DnsServer, ip: str = IP1, host: str = MX1) -> None:
    dns.add(DOMAIN, "MX", f"10 {host}.")
    dns.add(host, "A", ip)


# -- replies --------------------------------------------------------------------------------


def test_delivered_over_verified_tls_records_tls_details(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1)}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE_VERIFIED)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.smtp_code == 250
    assert attempt.enhanced_code == "2.0.0"
    assert (attempt.mx_host, attempt.mx_ip) == (MX1, IP1)
    assert attempt.tls.version in ("TLSv1.2", "TLSv1.3")
    assert attempt.tls.cipher
    assert attempt.tls.verified is True
    assert attempt.tls.verified_by is VerifiedBy.PKIX
    [received] = sink.wait_for(1)
    assert received.tls is True
    assert received.rcpt_tos == ("alice@example.org",)
    assert b"\r\n.leading dot\r\n" in received.data


def test_4xx_reply_defers_with_codes(dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn) -> None:
    mx.start({IP1: {"cert": ca.issue(MX1)}})
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["tempfail-451@example.org"], TlsPolicy.REQUIRE)

    assert attempt.status is AttemptStatus.DEFERRED
    assert (attempt.smtp_code, attempt.enhanced_code) == (451, "4.3.0")
    assert attempt.reply is not None
    assert "Temporary failure" in attempt.reply
    assert attempt.destination_failure is False


def test_5xx_reply_fails_permanently(dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn) -> None:
    mx.start({IP1: {"cert": ca.issue(MX1)}})
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["permfail-550@example.org"], TlsPolicy.REQUIRE)

    assert attempt.status is AttemptStatus.FAILED
    assert (attempt.smtp_code, attempt.enhanced_code) == (550, "5.1.1")
    assert attempt.reason == "invalid_recipient"


def test_connection_dropped_after_data_defers_as_destination_failure(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1)}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["drop@example.org"], TlsPolicy.REQUIRE)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.destination_failure is True
    assert "outcome unknown" in attempt.detail
    assert sink.messages == []


def test_several_recipients_share_one_transaction(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1)}})[IP1]
    one_mx(dns)
    rcpts = ["a@example.org", "permfail-550@example.org", "b@example.org"]

    attempts = deliver(DOMAIN, rcpts, TlsPolicy.REQUIRE_VERIFIED)

    assert [a.recipient for a in attempts] == rcpts
    assert [a.status for a in attempts] == [
        AttemptStatus.DELIVERED,
        AttemptStatus.FAILED,
        AttemptStatus.DELIVERED,
    ]
    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ("a@example.org", "b@example.org")
    assert sink.connections == 1


# -- TLS policy -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [TlsPolicy.REQUIRE_VERIFIED])
@pytest.mark.hipaa("164.312(e)(1)")
def test_unknown_ca_never_delivers_under_verified_policy(
    dns: DnsServer, untrusted_ca: TestCA, mx: MxFarm, deliver: DeliverFn, policy: TlsPolicy
) -> None:
    sink = mx.start({IP1: {"cert": untrusted_ca.issue(MX1)}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], policy)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "tls_required"
    assert "not trusted" in attempt.detail
    assert sink.messages == []


def test_unknown_ca_is_accepted_under_require(
    dns: DnsServer, untrusted_ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    mx.start({IP1: {"cert": untrusted_ca.issue(MX1)}})
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.tls.version is not None
    assert attempt.tls.verified is False


@pytest.mark.parametrize("policy", [TlsPolicy.OPPORTUNISTIC, TlsPolicy.REQUIRE, TlsPolicy.REQUIRE_VERIFIED])
@pytest.mark.hipaa("164.312(e)(1)")
def test_broken_tls_handshake_never_falls_back_to_plaintext(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn, policy: TlsPolicy
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1), "broken_tls": True}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], policy)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason in ("tls_required", "tls_failed")
    assert attempt.destination_failure is True
    assert sink.messages == []


@pytest.mark.parametrize(("kind", "detail"), [("wrong_name", "name mismatch"), ("expired", "expired")])
@pytest.mark.hipaa("164.312(e)(1)")
def test_bad_certificate_never_delivers_under_verified_policy(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn, kind: str, detail: str
) -> None:
    cert = ca.issue_wrong_name() if kind == "wrong_name" else ca.issue_expired(MX1)
    sink = mx.start({IP1: {"cert": cert}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE_VERIFIED)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "tls_required"
    assert detail in attempt.detail
    assert sink.messages == []


@pytest.mark.parametrize("kind", ["wrong_name", "expired"])
def test_bad_certificate_still_encrypts_under_require(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn, kind: str
) -> None:
    cert = ca.issue_wrong_name() if kind == "wrong_name" else ca.issue_expired(MX1)
    sink = mx.start({IP1: {"cert": cert}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE)

    assert attempt.status is AttemptStatus.DELIVERED
    assert sink.wait_for(1)[0].tls is True


def test_no_starttls_delivers_plaintext_only_when_opportunistic(
    dns: DnsServer, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.tls.version is None
    assert sink.wait_for(1)[0].tls is False


@pytest.mark.parametrize("policy", [TlsPolicy.REQUIRE, TlsPolicy.REQUIRE_VERIFIED])
def test_no_starttls_defers_when_tls_required(
    dns: DnsServer, mx: MxFarm, deliver: DeliverFn, policy: TlsPolicy
) -> None:
    sink = mx.start({IP1: {}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], policy)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "tls_required"
    assert attempt.detail == f"{MX1} offers no STARTTLS"
    assert sink.messages == []


# -- MTA-STS ----------------------------------------------------------------------------------


def sts_fetcher(dns: DnsServer, ca: TestCA, web: HttpsServer, policy_text: str) -> MtaStsFetcher:
    web.set_text("/.well-known/mta-sts.txt", policy_text)
    dns.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=20240101"')
    return MtaStsFetcher(
        Resolver(nameservers=[dns.address], timeout=2.0),
        ca_file=ca.ca_file,
        host_overrides={f"mta-sts.{DOMAIN}": web.address},
        allow_loopback=True,
    )


def test_sts_enforce_skips_mx_outside_policy(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sinks = mx.start({IP1: {"cert": ca.issue(MX1)}, IP2: {"cert": ca.issue(MX2)}})
    dns.add(DOMAIN, "MX", f"10 {MX1}.", f"20 {MX2}.")
    dns.add(MX1, "A", IP1)
    dns.add(MX2, "A", IP2)
    with HttpsServer(ca.issue(f"mta-sts.{DOMAIN}")) as web:
        fetcher = sts_fetcher(dns, ca, web, f"version: STSv1\nmode: enforce\nmx: {MX2}\nmax_age: 86400\n")
        [attempt] = deliver(DOMAIN, ["alice@example.org"], mta_sts=fetcher)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.mx_host == MX2
    assert attempt.tls.verified_by is VerifiedBy.MTA_STS
    assert sinks[IP1].connections == 0


def test_sts_enforce_raises_opportunistic_to_verified(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue_wrong_name()}})[IP1]
    one_mx(dns)
    with HttpsServer(ca.issue(f"mta-sts.{DOMAIN}")) as web:
        fetcher = sts_fetcher(
            dns, ca, web, "version: STSv1\nmode: enforce\nmx: *.example.org\nmax_age: 86400\n"
        )
        [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, mta_sts=fetcher)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "tls_required"
    assert "name mismatch" in attempt.detail
    assert sink.messages == []


def test_sts_testing_mode_does_not_raise_the_level(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    mx.start({IP1: {"cert": ca.issue_wrong_name()}})
    one_mx(dns)
    with HttpsServer(ca.issue(f"mta-sts.{DOMAIN}")) as web:
        fetcher = sts_fetcher(dns, ca, web, "version: STSv1\nmode: testing\nmx: other.net\nmax_age: 86400\n")
        [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, mta_sts=fetcher)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.tls.verified is False


# -- DANE -------------------------------------------------------------------------------------


def publish_tlsa(dns: DnsServer, port: int, data: bytes, *, secure: bool) -> None:
    name = f"_{port}._tcp.{MX1}"
    dns.add(name, "TLSA", f"3 1 1 {data.hex()}")
    if secure:
        dns.mark_secure(DOMAIN, name)


def test_dane_ee_match_with_ad_bit_delivers_verified_by_dane(
    dns: DnsServer, untrusted_ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    # DANE-EE authenticates the key itself: the (untrusted) issuer does not matter.
    cert = untrusted_ca.issue(MX1)
    mx.start({IP1: {"cert": cert}})
    one_mx(dns)
    publish_tlsa(dns, mx.port, tlsa_association_data(cert.der, 1, 1), secure=True)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, dane=True)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.tls.verified is True
    assert attempt.tls.verified_by is VerifiedBy.DANE


def test_dane_mismatch_is_never_delivered(dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1)}})[IP1]
    one_mx(dns)
    publish_tlsa(dns, mx.port, b"\x00" * 32, secure=True)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, dane=True)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "tls_required"
    assert "TLSA" in attempt.detail
    assert sink.messages == []


def test_tlsa_without_ad_bit_is_not_trusted(
    dns: DnsServer, untrusted_ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    cert = untrusted_ca.issue(MX1)
    sink = mx.start({IP1: {"cert": cert}})[IP1]
    one_mx(dns)
    publish_tlsa(dns, mx.port, tlsa_association_data(cert.der, 1, 1), secure=False)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.DANE, dane=True)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "tls_required"
    assert "DNSSEC-validated" in attempt.detail
    assert sink.messages == []


@pytest.mark.parametrize("matching", [True, False])
def test_dane_applies_to_a_signed_domain_without_mx(
    dns: DnsServer, untrusted_ca: TestCA, mx: MxFarm, deliver: DeliverFn, matching: bool
) -> None:
    # RFC 7672 §2.2.2: with no MX the domain is its own (implicit) MX, and its TLSA records
    # count when its address records are validated.  A mismatch must never become a
    # delivery to whoever answered with any certificate (the phi stream's REQUIRE).
    cert = untrusted_ca.issue(DOMAIN)
    sink = mx.start({IP1: {"cert": cert}})[IP1]
    dns.add(DOMAIN, "A", IP1)
    tlsa = f"_{mx.port}._tcp.{DOMAIN}"
    data = tlsa_association_data(cert.der, 1, 1) if matching else b"\x00" * 32
    dns.add(tlsa, "TLSA", f"3 1 1 {data.hex()}")
    dns.mark_secure(DOMAIN, tlsa)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE, dane=True)

    if matching:
        assert attempt.status is AttemptStatus.DELIVERED
        assert attempt.tls.verified_by is VerifiedBy.DANE
    else:
        assert attempt.status is AttemptStatus.DEFERRED
        assert attempt.reason == "tls_required"
        assert sink.messages == []


# -- DNS and routing --------------------------------------------------------------------------


def test_null_mx_fails_permanently(dns: DnsServer, deliver: DeliverFn) -> None:
    dns.add(DOMAIN, "MX", "0 .")

    [attempt] = deliver(DOMAIN, ["alice@example.org"])

    assert attempt.status is AttemptStatus.FAILED
    assert attempt.reason == "null_mx"


def test_nxdomain_fails_permanently(dns: DnsServer, deliver: DeliverFn) -> None:
    [attempt] = deliver("no-such-domain.example", ["alice@no-such-domain.example"])

    assert attempt.status is AttemptStatus.FAILED
    assert attempt.reason == "bad_domain"


def test_servfail_defers_as_dns_failure(dns: DnsServer, deliver: DeliverFn) -> None:
    dns.servfail(DOMAIN)

    [attempt] = deliver(DOMAIN, ["alice@example.org"])

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "dns_failure"


def test_lowest_preference_mx_is_tried_first(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sinks = mx.start({IP1: {"cert": ca.issue(MX1)}, IP2: {"cert": ca.issue(MX2)}})
    dns.add(DOMAIN, "MX", f"20 {MX1}.", f"5 {MX2}.")
    dns.add(MX1, "A", IP1)
    dns.add(MX2, "A", IP2)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE_VERIFIED, times=3)

    assert attempt.mx_host == MX2
    assert len(sinks[IP2].wait_for(3)) == 3
    assert sinks[IP1].connections == 0


def test_falls_back_to_next_mx_when_first_refuses_connection(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP2: {"cert": ca.issue(MX2)}})[IP2]
    dns.add(DOMAIN, "MX", f"10 {MX1}.", f"20 {MX2}.")
    dns.add(MX1, "A", REFUSING_IP)
    dns.add(MX2, "A", IP2)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE_VERIFIED)

    assert attempt.status is AttemptStatus.DELIVERED
    assert (attempt.mx_host, attempt.mx_ip) == (MX2, IP2)
    sink.wait_for(1)


def test_refused_connection_on_every_mx_defers(dns: DnsServer, mx: MxFarm, deliver: DeliverFn) -> None:
    mx.port = 2  # nothing listens on loopback port 2
    one_mx(dns, ip=REFUSING_IP)

    [attempt] = deliver(DOMAIN, ["alice@example.org"])

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "connection_failed"
    assert attempt.destination_failure is True


def test_domain_without_mx_uses_its_address_record(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(DOMAIN)}})[IP1]
    dns.add(DOMAIN, "A", IP1)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE_VERIFIED)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.mx_host == DOMAIN
    sink.wait_for(1)


def test_second_delivery_reuses_the_pooled_connection(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1)}})[IP1]
    one_mx(dns)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.REQUIRE_VERIFIED, times=2)

    assert attempt.status is AttemptStatus.DELIVERED
    assert len(sink.wait_for(2)) == 2
    assert sink.connections == 1


def test_smarthost_relays_with_auth_over_tls(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    relay_host = "relay.sealmail.test"
    sink = mx.start({IP1: {"cert": ca.issue(relay_host), "auth": {"relay-user": "s3cret"}}})[IP1]
    dns.add(relay_host, "A", IP1)
    relay = SmartHost(relay_host, mx.port, "relay-user", "s3cret", TlsPolicy.REQUIRE_VERIFIED)

    [attempt] = deliver("anywhere.example", ["bob@anywhere.example"], smarthost=relay)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.tls.verified_by is VerifiedBy.PKIX
    [received] = sink.wait_for(1)
    assert received.authenticated_as == "relay-user"
    assert received.tls is True


def test_smarthost_with_wrong_password_defers(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    relay_host = "relay.sealmail.test"
    sink = mx.start({IP1: {"cert": ca.issue(relay_host), "auth": {"relay-user": "s3cret"}}})[IP1]
    dns.add(relay_host, "A", IP1)
    relay = SmartHost(relay_host, mx.port, "relay-user", "wrong", TlsPolicy.REQUIRE)

    [attempt] = deliver("anywhere.example", ["bob@anywhere.example"], smarthost=relay)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "auth_failed"
    assert sink.messages == []


def test_relay_all_override_sends_everything_to_the_capture_sink(
    ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(IP1)}})[IP1]

    [attempt] = deliver(
        "gmail.example",
        ["x@gmail.example"],
        TlsPolicy.REQUIRE_VERIFIED,
        relay_all_to=(IP1, mx.port),
    )

    assert attempt.status is AttemptStatus.DELIVERED
    assert sink.wait_for(1)[0].rcpt_tos == ("x@gmail.example",)


@pytest.mark.parametrize(
    ("rcpts", "statuses"),
    [
        (
            ["a@example.org", "permfail-550@example.org", "b@example.org"],
            [AttemptStatus.DELIVERED, AttemptStatus.FAILED, AttemptStatus.DELIVERED],
        ),
        (
            ["tempfail-451@example.org", "permfail-550@example.org"],
            [AttemptStatus.DEFERRED, AttemptStatus.FAILED],
        ),
    ],
)
def test_pipelining_sends_mail_rcpt_and_data_in_one_write_and_reads_every_reply(
    dns: DnsServer,
    ca: TestCA,
    mx: MxFarm,
    deliver: DeliverFn,
    rcpts: list[str],
    statuses: list[AttemptStatus],
) -> None:
    sink = mx.start({IP1: {"cert": ca.issue(MX1), "pipelining": True}})[IP1]
    one_mx(dns)

    attempts = deliver(DOMAIN, rcpts, TlsPolicy.REQUIRE_VERIFIED, times=3)

    assert [a.status for a in attempts] == statuses
    assert sink.pipelined_batches == 3  # RFC 2920: one write per transaction
    delivered = [r for r, s in zip(rcpts, statuses, strict=True) if s is AttemptStatus.DELIVERED]
    if delivered:
        received = sink.wait_for(3)
        assert all(m.rcpt_tos == tuple(delivered) for m in received)
    else:
        assert sink.messages == []
    assert sink.connections == 1  # and the connection stays usable between transactions
