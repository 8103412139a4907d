"""Marketing fixtures: the API app, keys of each scope, a tenant with declared attributes.

Reuses the delivery fixtures (loopback DNS, test CA, MX sinks) for the campaign tests.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.delivery.conftest import ca, dns, mx

from sealmail.app import Services
from sealmail.intake.api.app import create_api

__all__ = ["ca", "dns", "mx"]

ATTRIBUTES = [
    {"name": "city", "type": "text", "phi_class": "demographic"},
    {"name": "age", "type": "number", "phi_class": "demographic"},
    {"name": "plan", "type": "choice", "phi_class": "none", "choices": ["gold", "silver"]},
    {"name": "diagnosis", "type": "text", "phi_class": "clinical"},
    {"name": "recall_due", "type": "date", "phi_class": "clinical"},
    {"name": "hiv_status", "type": "choice", "phi_class": "sensitive", "choices": ["positive", "negative"]},
    {"name": "smoker", "type": "boolean", "phi_class": "demographic"},
]


@dataclass
class Keys:
    admin: dict[str, str]
    sender: dict[str, str]
    reader: dict[str, str]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_for(services: Services, t: TenantFixture) -> Keys:
    _, send = services.tenancy.create_api_key(t.id, "sender", ["send", "read"], actor="test")
    _, read = services.tenancy.create_api_key(t.id, "reader", ["read"], actor="test")
    return Keys(bearer(t.api_key), bearer(send), bearer(read))


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def keys(services: Services, tenant: TenantFixture) -> Keys:
    return keys_for(services, tenant)


@pytest.fixture
def declared(client: TestClient, keys: Keys) -> Keys:
    for a in ATTRIBUTES:
        r = client.post("/v1/marketing/attributes", json=a, headers=keys.admin)
        assert r.status_code == 201, r.text
    return keys


@pytest.fixture
def other_tenant(services: Services) -> TenantFixture:
    return make_tenant(services, name="Other clinic", domain="other.example")
