"""SMTP AUTH failures counted across connections (per address and per username), over loopback."""

from __future__ import annotations

import base64
import smtplib
from typing import Any

from tests.integration.intake.conftest import GatewayFactory


def auth_plain(client: smtplib.SMTP, username: str, password: str) -> tuple[int, bytes]:
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {token}")


def test_failed_auth_is_throttled_across_connections_before_the_password_is_checked(
    start_gateway: GatewayFactory, connect: Any, credential: tuple[str, str, str]
) -> None:
    gateway = start_gateway(auth_failure_limit=2)
    _, username, password = credential
    first = connect(gateway)
    assert auth_plain(first, username, "wrong-1")[0] == 535
    assert auth_plain(first, username, "wrong-2")[0] == 535
    first.close()
    # A new connection does not start over, and even the right password waits.
    second = connect(gateway)
    code, reply = auth_plain(second, username, password)
    assert (code, reply[:5]) == (454, b"4.7.0")
    assert second.mail("doctor@clinic.example")[0] == 530
