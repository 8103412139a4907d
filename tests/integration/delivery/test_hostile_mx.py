"""The outbound client against MX servers that lie or misbehave, and MX records built to stall it.

What must hold whatever the server sends: the attempt ends as a value (deferred or failed
with a reason, never an exception out of the transport), within the command timeout for
each reply however the bytes are paced, and the broken connection is dropped, not pooled;
however many MX hosts and addresses a domain publishes, one delivery tries a bounded number.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tests.integration.delivery.conftest import DeliverFn, MxFarm, ScriptedMx
from tests.support.ca import ChainCert, TestCA, forge_with
from tests.support.dns_server import DnsServer
from tests.support.ports import unused_port
from tests.support.scripted_mx import LoopServer

from sealmail.delivery.routes import MAX_MX_HOSTS
from sealmail.delivery.smtp_client import MAX_ADDRESSES_PER_DELIVERY
from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy, VerifiedBy
from sealmail.net.dane import tlsa_association_data

pytestmark = pytest.mark.timeout(30)

DOMAIN = "example.org"
MX1 = "mx1.example.org"
PIPELINING_EHLO = [b"250-mx1.example.org\r\n", b"250-PIPELINING\r\n", b"250 8BITMIME\r\n"]


@pytest.mark.parametrize(
    "size", [b"\xc2\xb2", b"\xd9\xa3", b"9" * 5000], ids=["sup2", "arabic3", "digits5000"]
)
def test_a_size_limit_in_digits_int_cannot_read_is_no_limit(
    scripted: ScriptedMx, deliver: DeliverFn, size: bytes
) -> None:
    # str.isdigit() admits these; int() refuses "²" and 5000 digits and reads "٣" as 3 bytes.
    ehlo = [b"250-mx1.example.org\r\n", b"250-SIZE " + size + b"\r\n", b"250 8BITMIME\r\n"]
    server = scripted.start({b"EHLO": ehlo})

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert attempt.status is AttemptStatus.DELIVERED
    assert len(server.messages) == 1


@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize(
    "reply",
    [
        [b"hello there\r\n"],  # no reply code at all
        [b"250-" + b"x" * 9000 + b"\r\n250 ok\r\n"],  # one line past aiosmtplib's 8192
        [b"250-" + b"y" * 70 + b"\r\n"] * 1200 + [b"250 ok\r\n"],  # 86 KB of continuation lines
    ],
    ids=["no_code", "long_line", "endless_multiline"],
)
def test_a_malformed_reply_to_mail_defers_and_drops_the_connection(
    scripted: ScriptedMx, deliver: DeliverFn, reply: list[bytes], pipelining: bool
) -> None:
    script = {b"MAIL": [b"".join(reply)]}
    if pipelining:
        script[b"EHLO"] = PIPELINING_EHLO
    server = scripted.start(script)

    attempts = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, times=2)

    [attempt] = attempts
    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "connection_failed"
    assert "malformed reply" in attempt.detail
    assert server.messages == []
    # Not pooled: the second delivery opened a connection of its own.
    assert server.connections == 2


def test_a_malformed_reply_after_the_data_is_an_unknown_outcome(
    scripted: ScriptedMx, deliver: DeliverFn
) -> None:
    script = {b"DATA": [b"354 go on\r\n"]}
    server = scripted.start(script)
    server.final_reply = b"queued, thanks\r\n"

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert attempt.status is AttemptStatus.DEFERRED
    assert "outcome unknown" in attempt.detail
    assert attempt.destination_failure is True


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_reply_that_trickles_in_hits_the_command_timeout(
    scripted: ScriptedMx, deliver: DeliverFn, pipelining: bool
) -> None:
    # Every piece arrives well within the timeout of the one before, but the reply as a
    # whole takes ~8 times the command timeout: the deadline is per reply, not per read.
    trickle = [b"250-2.1.0 still thinking\r\n"] * 40 + [b"250 2.1.0 ok\r\n"]
    script = {b"MAIL": trickle}
    if pipelining:
        script[b"EHLO"] = PIPELINING_EHLO
    server = scripted.start(script, pace=0.1)
    started = time.monotonic()

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, command_timeout=0.5)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "connection_failed"
    assert time.monotonic() - started < 3.0
    assert server.messages == []


# -- MX records built to stall a delivery -------------------------------------------------------

IPS = [f"127.0.0.{n}" for n in range(2, 14)]  # twelve addresses


class Refusers(LoopServer):
    """A server on each of ``IPS`` (one port) that greets with 421 and counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__(self._greet, IPS, unused_port())

    async def _greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        writer.write(b"421 4.3.2 not now\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
def refusers(mx: MxFarm) -> Iterator[Refusers]:
    servers = Refusers()
    mx.port = servers.port
    yield servers
    servers.close()


@pytest.mark.parametrize("layout", ["many_mx_hosts", "one_host_many_addresses"])
def test_one_delivery_tries_a_bounded_number_of_addresses(
    dns: DnsServer, refusers: Refusers, deliver: DeliverFn, layout: str
) -> None:
    if layout == "many_mx_hosts":
        for n, ip in enumerate(IPS):
            dns.add(DOMAIN, "MX", f"{n} mx{n}.example.org.")
            dns.add(f"mx{n}.example.org", "A", ip)
    else:
        dns.add(DOMAIN, "MX", "10 mx.example.org.")
        dns.add("mx.example.org", "A", *IPS)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert attempt.status is AttemptStatus.DEFERRED
    assert refusers.connections == MAX_ADDRESSES_PER_DELIVERY


def test_dane_planning_looks_up_tlsa_for_a_bounded_number_of_mx_hosts(
    dns: DnsServer, refusers: Refusers, deliver: DeliverFn
) -> None:
    names = [f"mx{n}.example.org" for n in range(40)]
    for n, name in enumerate(names):
        dns.add(DOMAIN, "MX", f"{n} {name}.")
        dns.add(name, "A", IPS[0])
    dns.mark_secure(DOMAIN)

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, dane=True)

    assert attempt.status is AttemptStatus.DEFERRED
    tlsa = [owner for owner, rdtype in dns.queries if rdtype == "TLSA"]
    assert len(tlsa) == MAX_MX_HOSTS


# An MX target is a host name (RFC 5321 §2.3.5: letters, digits, hyphens).  DNS carries any
# bytes: forty 0xFF bytes render as a 160-character "label" that TLS cannot put in SNI, and
# "127.0.0.2." is a name of four numeric labels that only looks like an address.
NOT_A_HOST_NAME = "\\255" * 40 + ".evil.example"


@pytest.mark.parametrize("target", [NOT_A_HOST_NAME, "127.0.0.2"], ids=["bytes", "numeric"])
def test_an_mx_target_that_is_not_a_host_name_is_never_connected_to(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn, target: str
) -> None:
    sink = mx.start({IPS[0]: {"cert": ca.issue(MX1)}})[IPS[0]]
    dns.add(DOMAIN, "MX", f"10 {target}.")
    dns.add(target, "A", IPS[0])

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "dns_failure"
    assert sink.connections == 0


def test_an_mx_that_is_not_a_host_name_is_skipped_for_the_next_one(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn
) -> None:
    sink = mx.start({IPS[0]: {"cert": ca.issue(MX1)}})[IPS[0]]
    dns.add(DOMAIN, "MX", f"10 {NOT_A_HOST_NAME}.", f"20 {MX1}.")
    dns.add(NOT_A_HOST_NAME, "A", IPS[0])
    dns.add(MX1, "A", IPS[0])

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert attempt.status is AttemptStatus.DELIVERED
    assert attempt.mx_host == MX1
    assert sink.connections == 1


# -- certificate tricks -----------------------------------------------------------------------


@pytest.mark.parametrize("forged", [False, True], ids=["issued_by_the_anchor", "signed_by_a_leaf"])
def test_dane_ta_delivers_through_a_ca_chain_and_never_through_a_leaf_posing_as_one(
    dns: DnsServer, ca: TestCA, mx: MxFarm, deliver: DeliverFn, forged: bool
) -> None:
    # The domain names its CA's intermediate as DANE-TA ("2 1 1"). An attacker on the path
    # holds a certificate from the same CA for a domain of its own and signs one for the MX.
    anchor = ca.ca.create_child_ca()
    cert = forge_with(anchor.issue_cert("attacker.example"), MX1) if forged else anchor.issue_cert(MX1)
    presented = (
        cert
        if isinstance(cert, ChainCert)
        else ChainCert(b"".join(p.bytes() for p in cert.cert_chain_pems), cert.private_key_pem.bytes())
    )
    sink = mx.start({IPS[0]: {"cert": presented}})[IPS[0]]
    dns.add(DOMAIN, "MX", f"10 {MX1}.")
    dns.add(MX1, "A", IPS[0])
    spki = tlsa_association_data(_der(anchor.cert_pem.bytes()), 1, 1)
    dns.add(f"_{mx.port}._tcp.{MX1}", "TLSA", f"2 1 1 {spki.hex()}")
    dns.mark_secure(DOMAIN, f"_{mx.port}._tcp.{MX1}")

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, dane=True)

    if forged:
        assert attempt.status is AttemptStatus.DEFERRED
        assert attempt.reason == "tls_required"
        assert "not a CA" in attempt.detail
        assert sink.messages == []
    else:
        assert attempt.status is AttemptStatus.DELIVERED
        assert attempt.tls.verified_by is VerifiedBy.DANE


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_an_enhanced_code_in_digits_other_than_ascii_is_not_taken(
    scripted: ScriptedMx, deliver: DeliverFn
) -> None:
    # RFC 3463 codes are ASCII; "5.٣.١" was stored as the attempt's code and then made the
    # DSN's Status field raise UnicodeEncodeError (and the batch's other DSNs went unsent).
    scripted.start({b"RCPT": ["550 5.\u0663.\u0661 no such user\r\n".encode()]})

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert attempt.status is AttemptStatus.FAILED
    assert attempt.smtp_code == 550
    assert attempt.enhanced_code is None
