"""RFC 2920 PIPELINING: offered after STARTTLS, replies in order, a group's replies in one write."""

from __future__ import annotations

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
