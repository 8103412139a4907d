"""The served console for every test here (a module may still define its own)."""

from collections.abc import Iterator

import pytest
from tests.integration.console.console_harness import Console, console_server

from sealmail.app import Services


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c
