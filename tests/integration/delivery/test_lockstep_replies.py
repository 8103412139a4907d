"""The lockstep command path (servers without PIPELINING) against a scripted loopback server.

``transaction._command`` reads each reply from aiosmtplib's response waiter under one
deadline instead of ``execute_command``: what it must keep is a timeout that fails the hop
rather than hanging, a 421 that closes the connection (RFC 5321 §3.8), multi-line replies
and replies that arrive in pieces.
"""

from __future__ import annotations

import pytest
from tests.integration.delivery.conftest import DeliverFn, ScriptedMx

from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy

pytestmark = pytest.mark.timeout(30)

DOMAIN = "example.org"


def test_multi_line_replies_in_pieces_deliver_in_lockstep(scripted: ScriptedMx, deliver: DeliverFn) -> None:
    server = scripted.start(
        {
            b"MAIL": [b"250-2.1.0 first line\r\n250-", b"2.1.0 second", b" line\r\n250 2.1.0 ok\r\n"],
            b"RCPT": [b"25", b"0 2.1.5 ok\r\n"],
        },
    )

    [a, b] = deliver(DOMAIN, ["alice@example.org", "bob@example.org"], TlsPolicy.OPPORTUNISTIC)

    assert (a.status, b.status) == (AttemptStatus.DELIVERED, AttemptStatus.DELIVERED)
    assert a.smtp_code == 250
    assert server.commands[:5] == [b"EHLO", b"MAIL", b"RCPT", b"RCPT", b"DATA"]
    [body] = server.messages
    assert b"\r\n..leading dot\r\n" in body  # dot-stuffed on the wire


def test_silent_server_times_out_instead_of_hanging(scripted: ScriptedMx, deliver: DeliverFn) -> None:
    server = scripted.start({b"RCPT": []})  # RCPT is never answered

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, command_timeout=0.5)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "connection_failed"
    assert server.messages == []


def test_421_closes_the_connection_and_defers(scripted: ScriptedMx, deliver: DeliverFn) -> None:
    server = scripted.start({b"MAIL": [b"421 4.3.2 closing\r\n"]})

    attempts = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, times=2)

    [attempt] = attempts
    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.smtp_code == 421
    assert attempt.destination_failure is True
    # The closed connection is not pooled: the second delivery opened its own.
    assert server.connections == 2
    assert server.messages == []
