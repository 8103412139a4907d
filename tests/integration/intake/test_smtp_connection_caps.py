"""A client that opens connection after connection, against a real gateway on loopback.

Every connection holds a socket and an idle timer for minutes, so one client must not hold
them all: past the per-client cap it gets ``421 4.7.0`` instead of the greeting and is
closed before a command is read; past the listener's cap everyone does (``421 4.4.5``).
Other addresses (127.0.0.2 here) still get in, a closed connection gives its place back
(STARTTLS included), and the connector networks are not capped per client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.intake.conftest import CLIENT_TIMEOUT, GatewayFactory
from tests.support.waiting import wait_until

from sealmail.domain import smtp_replies as replies
from sealmail.intake.smtp import SmtpGateway


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def settled(gateway: SmtpGateway) -> SmtpGateway:
    """The gateway once aiosmtpd's start-up self-check connection has given its place back."""
    wait_until(lambda: gateway.gate.open == 0, 5, "the start-up check connection was not released")
    return gateway


def dial(gateway: SmtpGateway, opened: list[socket.socket], source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    opened.append(sock)
    sock.settimeout(CLIENT_TIMEOUT)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", gateway.port))
    return sock


def first_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(512)
        if not chunk:
            break
        data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"EHLO client.test\r\n")
        return sock.recv(512) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def greeted(gateway: SmtpGateway, opened: list[socket.socket], source: str = "127.0.0.1") -> bool:
    return first_line(dial(gateway, opened, source)).startswith(b"220 ")


def test_one_address_is_capped_and_answered_421_before_any_command(
    start_gateway: GatewayFactory, sockets: list[socket.socket]
) -> None:
    gateway = settled(start_gateway(smtp_max_connections_per_client=3, smtp_hostname="mx.clinic.test"))
    held = [dial(gateway, sockets) for _ in range(3)]
    assert all(first_line(s).startswith(b"220 mx.clinic.test") for s in held)

    refused = dial(gateway, sockets)
    line = first_line(refused)
    mine = replies.S421_TOO_MANY_FROM_CLIENT
    assert line == f"421 {mine.enhanced} mx.clinic.test {mine.text}\r\n".encode()
    assert closed_by_server(refused)  # nothing it sends is read
    assert gateway.rejections["too_many_connections_from_client"] == 1

    assert greeted(gateway, sockets, "127.0.0.2")  # another client is not held back
    held[0].close()
    # The place comes back once the gateway has seen the close.
    wait_until(lambda: greeted(gateway, sockets), 5, "a closed connection's place was not given back")


def test_the_listener_cap_holds_for_every_address(
    start_gateway: GatewayFactory, sockets: list[socket.socket]
) -> None:
    gateway = settled(start_gateway(smtp_max_connections=3))
    assert all(greeted(gateway, sockets, f"127.0.0.{n}") for n in (1, 2, 3))
    line = first_line(dial(gateway, sockets, "127.0.0.4"))
    assert line.startswith(f"421 {replies.S421_TOO_MANY_CONNECTIONS.enhanced} ".encode()), line
    assert gateway.rejections["too_many_connections"] == 1


def test_sessions_that_ran_starttls_give_their_place_back(
    start_gateway: GatewayFactory, connect: Any
) -> None:
    gateway = settled(start_gateway(smtp_max_connections_per_client=1))
    for _ in range(3):  # one at a time: each must find the one place free again
        client = connect(gateway)
        assert client.noop()[0] == 250
        client.quit()
        wait_until(lambda: gateway.gate.open == 0, 5, "the STARTTLS session kept its place")
    assert sum(gateway.rejections.values()) == 0


def test_connector_networks_are_not_capped_per_client(
    start_gateway: GatewayFactory, sockets: list[socket.socket], tenant: Any
) -> None:
    gateway = settled(
        start_gateway(
            smtp_max_connections_per_client=2,
            smtp_connector_networks=["127.0.0.0/30"],
            smtp_connector_tenant=tenant.id,
        )
    )
    assert all(greeted(gateway, sockets) for _ in range(4))
    # An address outside the connector range is still capped.
    assert greeted(gateway, sockets, "127.0.0.9") and greeted(gateway, sockets, "127.0.0.9")
    assert first_line(dial(gateway, sockets, "127.0.0.9")).startswith(b"421 4.7.0 ")
