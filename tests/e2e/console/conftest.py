"""The console suites' browser, settings (one engine: the HTTP suites cover both) and server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import make_settings
from tests.e2e.portal import conftest as portal_browser
from tests.integration.console.console_harness import Console, console_server

from sealmail.app import Services
from sealmail.config import Settings

# The portal suite's Chromium fixture, re-exported (an assignment, so pytest finds it here).
browser = portal_browser.browser


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return make_settings(tmp_path, sqlite_url)


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c
