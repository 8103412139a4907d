"""The portal stack with an SMPP provider on a loopback SMSC (the ``stack`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import Stack, portal_stack
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.smpp_server import SmppServer


@pytest.fixture
def stack(
    tmp_path: Path,
    sqlite_url: str,
    dns: DnsServer,
    ca: TestCA,
    mx: MxFarm,
    smsc: SmppServer,
) -> Iterator[Stack]:
    host, port = smsc.address
    over = {
        "sms_provider": "smpp",
        "smpp_host": host,
        "smpp_port": port,
        "smpp_system_id": "sealmail",
        "smpp_password": "secret12",
    }
    with portal_stack(tmp_path, sqlite_url, dns, ca, mx, **over) as s:
        yield s
