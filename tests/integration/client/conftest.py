"""Fixtures for the client tests: a real API server over the ``services`` of the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import TenantFixture, make_settings
from tests.integration.client.server import ApiServer
from tests.support.dns_server import DnsServer

from sealmail.app import Services
from sealmail.client import SealmailClient
from sealmail.config import Settings


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, db_url: str, dns: DnsServer) -> Settings:
    host, port = dns.address
    return make_settings(tmp_path, db_url, dns_nameservers=[f"{host}:{port}"], dns_timeout_seconds=2.0)


@pytest.fixture
def api(services: Services) -> Iterator[ApiServer]:
    with ApiServer(services) as server:
        yield server


@pytest.fixture
def client(api: ApiServer, tenant: TenantFixture) -> Iterator[SealmailClient]:
    with SealmailClient(api.url, tenant.api_key, timeout=10) as sm:
        yield sm
