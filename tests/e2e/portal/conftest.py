"""Portal browser fixtures: the delivery suite's DNS, CA and MX farm, a portal stack, Chromium."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.delivery import conftest as delivery
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import Stack, portal_stack
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip

# The delivery suite's fixtures, re-exported (an assignment, so the fixtures below may name them).
ca, dns, mx = delivery.ca, delivery.dns, delivery.mx


@pytest.fixture
def stack(tmp_path: Path, sqlite_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, sqlite_url, dns, ca, mx) as s:
        yield s


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()
