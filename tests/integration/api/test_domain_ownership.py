"""A domain verified by one tenant cannot be registered or verified by another (issue 11 §7)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.api.test_admin_api import client, dns, h, svc, t  # noqa: F401 — fixtures
from tests.support.dns_server import DnsServer

from sealmail.app import Services
from sealmail.errors import Conflict


def test_another_tenants_verified_domain_cannot_be_registered(
    client: TestClient,  # noqa: F811 — the imported fixture
    svc: Services,  # noqa: F811
    t: TenantFixture,  # noqa: F811
) -> None:
    other = make_tenant(svc, "Other", "other.example")
    for spelling in ("clinic.example", "Clinic.Example.", "CLINIC.example"):
        r = client.post("/v1/domains", json={"name": spelling}, headers=h(other))
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "verified by another organisation" in r.json()["detail"]
        assert t.id not in r.text
    names = [d["name"] for d in client.get("/v1/domains", headers=h(other)).json()["data"]]
    assert names == ["other.example"]


def test_unverified_claims_coexist_and_the_first_verification_wins(
    client: TestClient,  # noqa: F811
    svc: Services,  # noqa: F811
    t: TenantFixture,  # noqa: F811
    dns: DnsServer,  # noqa: F811
) -> None:
    other = make_tenant(svc, "Other", "other.example")
    mine = client.post("/v1/domains", json={"name": "hospital.example"}, headers=h(t))
    theirs = client.post("/v1/domains", json={"name": "hospital.example"}, headers=h(other))
    assert mine.status_code == theirs.status_code == 201
    dns.add("_sealmail.hospital.example", "TXT", f'"{theirs.json()["verification"]["value"]}"')
    dns.add("_sealmail.hospital.example", "TXT", f'"{mine.json()["verification"]["value"]}"')
    won = client.post("/v1/domains/hospital.example/verify", headers=h(other))
    assert won.status_code == 200 and won.json()["verified"] is True
    lost = client.post("/v1/domains/hospital.example/verify", headers=h(t))
    assert lost.status_code == 409
    assert "verified by another organisation" in lost.json()["detail"]
    send = {"from": "noreply@hospital.example", "to": ["p@example.net"], "subject": "s", "text": "t"}
    assert client.post("/v1/messages", json=send, headers=h(t)).status_code == 422
    third = make_tenant(svc, "Third", "third.example")
    assert client.post("/v1/domains", json={"name": "hospital.example"}, headers=h(third)).status_code == 409


def test_operator_cannot_mark_a_taken_domain_verified_for_a_second_tenant(
    svc: Services,  # noqa: F811
    t: TenantFixture,  # noqa: F811
) -> None:
    second = svc.tenancy.create_tenant("Second", actor="test")
    with pytest.raises(Conflict, match="verified by another organisation"):
        svc.tenancy.add_domain(second, "clinic.example", actor="test", verified=True)
