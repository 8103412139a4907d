"""SMS integration fixtures: a loopback SMSC, an event loop thread, and the delivery
suite's DNS, CA and MX farm for the portal stack."""

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import make_settings
from tests.integration.delivery.conftest import ca, dns, mx  # noqa: F401 — fixtures, re-exported
from tests.integration.sms.portal_stack import stack  # noqa: F401 — a fixture, re-exported
from tests.support.loop_thread import LoopThread
from tests.support.smpp_server import SmppServer
from tests.support.twilio_server import TwilioServer

from sealmail.config import Settings


@pytest.fixture
def smsc() -> Iterator[SmppServer]:
    s = SmppServer().start()
    yield s
    s.stop()


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    t = TwilioServer().start()
    yield t
    t.stop()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


def noon_zone() -> str:
    """A fixed-offset zone where it is about noon now, so quiet hours never interfere."""
    offset = 12 - datetime.now(UTC).hour
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def twilio_site(
    tmp_path: Path, db_url: str, twilio: TwilioServer, **extra: Any
) -> tuple[socket.socket, str, Settings]:
    """A bound socket for the public site, its URL, and settings for the HTTP provider whose
    callbacks come back to that URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        tmp_path, db_url, sms_provider="twilio", twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token, twilio_base_url=twilio.base_url, portal_base_url=base, **extra,
    )  # fmt: skip
    return sock, base, settings
