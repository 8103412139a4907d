"""Command lines a well-behaved client never sends, against a real gateway on loopback.

Each is answered with the catalogue's permanent reply (never a 451 "local error", which tells
the client to retry the same bytes forever), nothing quoted back from the client, and the
connection keeps serving the next command.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.intake import test_smtp_gateway as gw

from sealmail.app import Services
from sealmail.domain import smtp_replies as replies
from sealmail.intake.smtp import SmtpGateway


def command(client: Any, line: bytes) -> tuple[int, bytes]:
    """Send ``line`` byte for byte (smtplib would encode a str as ASCII) and read the reply."""
    client.sock.sendall(line + b"\r\n")
    return client.getreply()


@pytest.mark.parametrize(
    ("lines", "refused"),
    [
        # Invalid UTF-8 reaches the handler as lone surrogates (aiosmtpd's surrogateescape).
        ([b"MAIL FROM:<\xff\xfe@clinic.example>"], replies.S553_BAD_SENDER_ADDRESS),
        (
            [b"MAIL FROM:<doctor@clinic.example> SMTPUTF8", b"RCPT TO:<pat\xc3ient@example.org>"],
            replies.S553_BAD_ADDRESS,
        ),
        (
            [b"MAIL FROM:<doctor@clinic.example>", b"RCPT TO:<patient@exam\xffple.org>"],
            replies.S553_BAD_ADDRESS,
        ),
    ],
    ids=["mail_from", "rcpt_local_part_smtputf8", "rcpt_domain"],
)
def test_invalid_utf8_in_a_path_is_refused_permanently_not_as_a_local_error(
    lines: list[bytes],
    refused: replies.Reply,
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = gw.authenticated(connect, gateway, credential)
    for line in lines[:-1]:
        assert command(client, line)[0] == 250
    code, reply = command(client, lines[-1])
    assert (code, reply[: len(refused.enhanced)].decode()) == (refused.code, refused.enhanced), reply
    assert reply.endswith(b"is not valid UTF-8")
    assert gateway.rejections["internal_error"] == 0
    # The session goes on: a clean transaction on the same connection is stored.
    client.rset()
    gw.queued_id(*gw.send(client, gw.message()))
    assert len(gw.stored_ids(services, tenant)) == 1


def test_an_unknown_verb_is_not_quoted_back(gateway: SmtpGateway, connect: Any) -> None:
    client = connect(gateway)
    # aiosmtpd's own reply quoted the verb as sent: CR, ESC and NUL inside our reply line.
    client.sock.sendall(b"X\x1b[2J\rFAKE\x00\r\n")
    line = client.sock.recv(4096)
    assert line == f"{replies.S500_UNRECOGNIZED_COMMAND}\r\n".encode()
    assert client.noop()[0] == 250


def test_starttls_inside_tls_is_a_bad_sequence_and_the_session_goes_on(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], services: Services, tenant: Any
) -> None:
    client = gw.authenticated(connect, gateway, credential)
    # It was answered 220; the second handshake inside the first then failed and the
    # session was dropped.
    assert client.docmd("STARTTLS") == (503, b"5.5.1 Bad sequence of commands: TLS already active")
    gw.queued_id(*gw.send(client, gw.message()))
    assert gateway.rejections["tls_failed"] == 0
