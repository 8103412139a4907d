"""Reuse the delivery fixtures (loopback DNS, test CA, MX sinks) and share API helpers."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.delivery.conftest import ca, dns, mx
from tests.integration.intake.conftest import (
    connect,
    connector_ca,
    credential,
    gateway,
    server_ca,
    start_gateway,
    tls_files,
)

from sealmail.app import Services
from sealmail.intake.api.app import create_api

__all__ = [
    "api",
    "auth",
    "ca",
    "connect",
    "connector_ca",
    "credential",
    "dns",
    "gateway",
    "mx",
    "send",
    "server_ca",
    "start_gateway",
    "tls_files",
]


@pytest.fixture
def api(services: Services) -> TestClient:
    return TestClient(create_api(services), raise_server_exceptions=False)


def auth(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


def send(api: TestClient, t: TenantFixture, to: list[str], **over: Any) -> Any:
    body = {
        "from": f"Clinic <noreply@{t.domain}>",
        "to": to,
        "subject": "Your appointment",
        "text": "See you Tuesday.",
        **over,
    }
    return api.post("/v1/messages", json=body, headers=auth(t))
