"""What Sealmail sends is one message even to a receiver that parses end-of-data leniently.

SMTP smuggling (2023): a receiver that drops NUL or takes a bare CR or LF as a line end
sees ``<LF>.<LF>`` or ``<CRLF><NUL>.<CRLF>`` as the end of data and reads what follows
as a second, unauthenticated transaction.  The transport must send canonical bytes
(CRLF only, no NUL, dot-stuffed; RFC 5321 §2.3.8, §4.5.2) whatever it was handed.
"""

from __future__ import annotations

import re

import pytest
from tests.integration.delivery.conftest import DeliverFn
from tests.support.dns_server import DnsServer
from tests.support.lenient_sink import LenientSink
from tests.support.waiting import wait_until

from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy

pytestmark = pytest.mark.timeout(20)

SMUGGLED = (
    b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
    b"From: ceo@bank.example\r\nSubject: wire the money\r\n\r\nsmuggled\r\n"
)
HEAD = b"From: sender@sealmail.test\r\nTo: alice@example.org\r\nSubject: hi\r\n"
# Each variant ends the data early for a lenient receiver if sent as is.
VARIANTS = {
    "nul_before_dot": b"\r\n\x00.\r\n",
    "nul_after_dot": b"\r\n.\x00\r\n",
    "bare_lf": b"\n.\n",
    "bare_cr": b"\r.\r",
    "lf_then_crlf": b"\n.\r\n",
}
BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_smuggled_end_of_data_reaches_a_lenient_receiver_as_one_message(
    dns: DnsServer, deliver: DeliverFn, variant: str
) -> None:
    message = HEAD + b"X-Note: a\rb\x00c\nd\r\n\r\nHello.\r\n" + VARIANTS[variant] + SMUGGLED + b".\r\n"
    with LenientSink("127.0.0.2") as sink:
        dns.add("example.org", "MX", "10 mx1.example.org.")
        dns.add("mx1.example.org", "A", "127.0.0.2")

        [attempt] = deliver(
            "example.org", ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, port=sink.port, message=message
        )

        assert attempt.status is AttemptStatus.DELIVERED, attempt
        wait_until(lambda: sink.closed >= 1, 10, "the transport did not close its connection")
    assert len(sink.messages) == 1, [m[-120:] for m in sink.messages]
    [received] = sink.messages
    assert b"\x00" not in received
    assert BARE.search(received) is None
    # The header's bare CR and LF became folds: no new field appeared at the next hop.
    assert b"\r\nX-Note: a\r\n bc\r\n d\r\n" in received
    # The would-be second message is plain text inside the first.
    assert b"wire the money" in received
