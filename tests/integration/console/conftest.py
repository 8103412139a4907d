"""The console served on loopback, and its first owner enrolled (shared by the console suites)."""

from collections.abc import Iterator

import pytest
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, console_server, enrol

from sealmail.app import Services

OWNER = "owner@clinic.example"


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


@pytest.fixture
def owner(console: Console, tenant: TenantFixture) -> Person:
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    assert token
    return enrol(console, token, OWNER)
