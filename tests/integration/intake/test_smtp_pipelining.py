"""RFC 2920 PIPELINING: offered in EHLO, replies in order, a group's replies in one write."""

from __future__ import annotations

import socket
from typing import Any

from tests.integration.intake import test_smtp_gateway as gw

from sealmail.app import Services
from sealmail.intake.smtp import SmtpGateway


def test_a_pipelined_group_is_answered_in_order_in_one_write(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], services: Services, tenant: Any
) -> None:
    client = gw.authenticated(connect, gateway, credential)
    assert "pipelining" in client.esmtp_features
    # MAIL, RCPT and DATA in one packet (RFC 2920 §3.1): three replies in one TLS record.
    client.sock.sendall(f"MAIL FROM:<{gw.SENDER}>\r\nRCPT TO:<{gw.EXTERNAL}>\r\nDATA\r\n".encode())
    replies = client.sock.recv(65536).split(b"\r\n")
    assert [line[:3] for line in replies if line] == [b"250", b"250", b"354"], replies
    client.sock.sendall(gw.message() + b".\r\n")
    first = gw.queued_id(*client.getreply())
    # A refused recipient in the group: every reply still comes, in order.
    client.sock.sendall(
        f"MAIL FROM:<{gw.SENDER}>\r\nRCPT TO:<someone@example.test>\r\n"
        f"RCPT TO:<{gw.EXTERNAL}>\r\nDATA\r\n".encode()
    )
    assert [client.getreply()[0] for _ in range(4)] == [250, 553, 250, 354]
    client.sock.sendall(gw.message(message_id="<fixed-2@clinic.example>") + b".\r\n")
    second = gw.queued_id(*client.getreply())
    assert {first, second} <= set(gw.stored_ids(services, tenant))
    # Commands sent one by one are answered one by one, as before.
    assert client.noop()[0] == 250
    assert client.mail(gw.SENDER)[0] == 250


def _reply(sock: Any) -> bytes:
    """One whole (possibly multi-line) reply, read without buffering past it."""
    data = b""
    while not (data.endswith(b"\r\n") and data.split(b"\r\n")[-2][3:4] == b" "):
        data += sock.recv(1)
    return data


def test_commands_sent_behind_starttls_in_the_clear_are_discarded(
    gateway: SmtpGateway, server_ca: Any
) -> None:
    """RFC 3207 §6: what follows STARTTLS in the same plaintext packet is never run, held
    replies or not."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        assert _reply(sock).startswith(b"220 ")
        sock.sendall(b"EHLO client.test\r\n")
        assert _reply(sock).startswith(b"250-")
        sock.sendall(b"STARTTLS\r\nNOOP\r\n")
        assert _reply(sock).startswith(b"220 ")
        tls = server_ca.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        tls.sendall(b"EHLO client.test\r\n")
        ehlo = _reply(tls)
        assert ehlo.startswith(b"250-") and b"PIPELINING" in ehlo
        tls.sendall(b"NOOP\r\n")
        assert _reply(tls).startswith(b"250 ")
        tls.sendall(b"QUIT\r\n")
        assert _reply(tls).startswith(b"221 ")
    finally:
        sock.close()
