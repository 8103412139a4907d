"""The lockstep command path (servers without PIPELINING) against a scripted loopback server.

``transaction._command`` reads each reply from aiosmtplib's response waiter under one
deadline instead of ``execute_command``: what it must keep is a timeout that fails the hop
rather than hanging, a 421 that closes the connection (RFC 5321 §3.8), multi-line replies
and replies that arrive in pieces.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from tests.integration.delivery.conftest import DeliverFn, MxFarm
from tests.support.dns_server import DnsServer
from tests.support.loop_thread import LoopThread

from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy

pytestmark = pytest.mark.timeout(30)

DOMAIN = "example.org"
MX1, IP1 = "mx1.example.org", "127.0.0.2"
# What the scripted server answers to each command (by its verb); "" never answers.
NORMAL = {
    b"EHLO": [b"250-mx1.example.org\r\n", b"250 8BITMIME\r\n"],
    b"MAIL": [b"250 2.1.0 ok\r\n"],
    b"RCPT": [b"250 2.1.5 ok\r\n"],
    b"DATA": [b"354 go on\r\n"],
    b"RSET": [b"250 2.0.0 ok\r\n"],
    b"QUIT": [b"221 2.0.0 bye\r\n"],
}


class Scripted:
    """A plaintext SMTP server without PIPELINING that answers from ``script``."""

    def __init__(self, script: dict[bytes, list[bytes]]) -> None:
        self.script = {**NORMAL, **script}
        self.connections = 0
        self.messages: list[bytes] = []
        self.commands: list[bytes] = []
        self._lock = threading.Lock()
        self.loop = LoopThread()
        self.server = self.loop.run(asyncio.start_server(self._serve, IP1, 0))
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        writer.write(b"220 mx1.example.org ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                with self._lock:
                    self.commands.append(verb)
                for piece in self.script.get(verb, [b"500 5.5.2 what\r\n"]):
                    # Each piece is its own write (and packet): replies arrive in parts.
                    writer.write(piece)
                    await writer.drain()
                if verb == b"DATA" and self.script[b"DATA"][-1].startswith(b"354"):
                    body = await reader.readuntil(b"\r\n.\r\n")
                    with self._lock:
                        self.messages.append(body)
                    writer.write(b"250 2.0.0 queued\r\n")
                if verb == b"QUIT":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        # On the server's own loop: asyncio.Server is not thread-safe, and a close from this
        # thread raced the loop's own wake-up as the last connection ended (a TypeError).
        self.loop.run(self._close())
        self.loop.close()

    async def _close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
def scripted(dns: DnsServer) -> Iterator[list[Scripted]]:
    dns.add(DOMAIN, "MX", f"10 {MX1}.")
    dns.add(MX1, "A", IP1)
    servers: list[Scripted] = []
    yield servers
    for server in servers:
        server.close()


def start(servers: list[Scripted], mx: MxFarm, script: dict[bytes, list[bytes]]) -> Scripted:
    server = Scripted(script)
    servers.append(server)
    mx.port = server.port  # the transport's MX port
    return server


def test_multi_line_replies_in_pieces_deliver_in_lockstep(
    scripted: list[Scripted], mx: MxFarm, deliver: DeliverFn
) -> None:
    server = start(
        scripted,
        mx,
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


def test_silent_server_times_out_instead_of_hanging(
    scripted: list[Scripted], mx: MxFarm, deliver: DeliverFn
) -> None:
    server = start(scripted, mx, {b"RCPT": []})  # RCPT is never answered

    [attempt] = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, command_timeout=0.5)

    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.reason == "connection_failed"
    assert server.messages == []


def test_421_closes_the_connection_and_defers(
    scripted: list[Scripted], mx: MxFarm, deliver: DeliverFn
) -> None:
    server = start(scripted, mx, {b"MAIL": [b"421 4.3.2 closing\r\n"]})

    attempts = deliver(DOMAIN, ["alice@example.org"], TlsPolicy.OPPORTUNISTIC, times=2)

    [attempt] = attempts
    assert attempt.status is AttemptStatus.DEFERRED
    assert attempt.smtp_code == 421
    assert attempt.destination_failure is True
    # The closed connection is not pooled: the second delivery opened its own.
    assert server.connections == 2
    assert server.messages == []
