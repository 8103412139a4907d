"""SMS integration fixtures: a loopback SMSC, an event loop thread, and the delivery
suite's DNS, CA and MX farm for the portal stack."""

from collections.abc import Iterator

import pytest
from tests.integration.delivery.conftest import ca, dns, mx  # noqa: F401 — fixtures, re-exported
from tests.support.loop_thread import LoopThread
from tests.support.smpp_server import SmppServer


@pytest.fixture
def smsc() -> Iterator[SmppServer]:
    s = SmppServer().start()
    yield s
    s.stop()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()
