"""SMS integration fixtures: a loopback SMSC, an event loop thread, and the delivery
suite's DNS, CA and MX farm for the portal stack."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from tests.integration.delivery.conftest import ca, dns, mx  # noqa: F401 — fixtures, re-exported
from tests.integration.sms.portal_stack import stack  # noqa: F401 — a fixture, re-exported
from tests.support.loop_thread import LoopThread
from tests.support.smpp_server import SmppServer
from tests.support.twilio_server import TwilioServer


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
