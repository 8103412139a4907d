"""Management endpoints: settings, domains (verified through real DNS), keys, credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.support.dns_server import DnsServer

from sealmail.app import Services, build_services
from sealmail.config import Settings
from sealmail.intake.api.app import create_api
from sealmail.store.tables import audit_log
from sealmail.tenancy.tables import console_decisions


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def svc(settings: Settings, dns: DnsServer) -> Iterator[Services]:
    configured = settings.model_copy(update={"dns_nameservers": [f"{dns.address[0]}:{dns.address[1]}"]})
    services = build_services(configured)
    yield services
    services.close()


@pytest.fixture
def t(svc: Services) -> TenantFixture:
    return make_tenant(svc)


@pytest.fixture
def client(svc: Services) -> TestClient:
    return TestClient(create_api(svc), raise_server_exceptions=False)


def h(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


def test_tls_policy_settings_are_validated_and_audited(
    client: TestClient, svc: Services, t: TenantFixture
) -> None:
    bad = client.patch("/v1/tenant/settings", json={"tls_policy": {"phi": "opportunistic"}}, headers=h(t))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "tls_policy.phi"
    ok = client.patch(
        "/v1/tenant/settings", json={"tls_policy": {"phi": "dane", "transactional": "require"}}, headers=h(t)
    )
    assert ok.status_code == 200
    assert ok.json()["settings"]["tls_policy"] == {"phi": "dane", "transactional": "require"}
    # Lowering a stream's TLS level is a weakening: refused without a written reason.
    unexplained = client.patch("/v1/tenant/settings", json={"tls_policy": {"phi": None}}, headers=h(t))
    assert unexplained.status_code == 422 and unexplained.json()["errors"][0]["field"] == "reason"
    assert "tls_policy.phi" in unexplained.json()["errors"][0]["message"]
    why = "Our partner's MX has no DNSSEC yet; verified TLS is enforced instead."
    cleared = client.patch(
        "/v1/tenant/settings", json={"tls_policy": {"phi": None}, "reason": why}, headers=h(t)
    )
    assert cleared.json()["settings"]["tls_policy"] == {"transactional": "require"}
    with svc.engine.connect() as conn:
        register = conn.execute(sa.select(console_decisions)).all()
    assert [(d.setting, d.before, d.after, d.reason, d.actor) for d in register] == [
        ("tls_policy.phi", "dane", None, why, t.principal.credential_id)
    ]
    with svc.engine.connect() as conn:
        actions = [
            r.action
            for r in conn.execute(
                sa.select(audit_log.c.action).where(audit_log.c.action == "tenant:settings_changed")
            )
        ]
    assert len(actions) == 2


def test_domain_is_verified_only_once_its_txt_record_exists(
    client: TestClient, dns: DnsServer, t: TenantFixture
) -> None:
    added = client.post("/v1/domains", json={"name": "Hospital.Example"}, headers=h(t))
    assert added.status_code == 201
    record = added.json()["verification"]
    assert record["name"] == "_sealmail.hospital.example"
    send = {"from": "noreply@hospital.example", "to": ["p@example.net"], "subject": "s", "text": "t"}
    assert client.post("/v1/messages", json=send, headers=h(t)).status_code == 422
    early = client.post("/v1/domains/hospital.example/verify", headers=h(t))
    assert early.status_code == 409
    assert "_sealmail.hospital.example" in early.json()["detail"]
    dns.add("_sealmail.hospital.example", "TXT", f'"{record["value"]}"')
    done = client.post("/v1/domains/hospital.example/verify", headers=h(t))
    assert done.status_code == 200, done.text
    assert done.json()["verified"] is True
    assert client.post("/v1/messages", json=send, headers=h(t)).status_code == 202


def test_a_domain_verified_by_one_tenant_does_not_let_another_send_as_it(
    client: TestClient, svc: Services, t: TenantFixture
) -> None:
    other = make_tenant(svc, "Other", "other.example")
    send = {"from": "noreply@clinic.example", "to": ["p@example.net"], "subject": "s", "text": "t"}
    assert client.post("/v1/messages", json=send, headers=h(other)).status_code == 422
    assert client.post("/v1/domains/clinic.example/verify", headers=h(other)).status_code == 404


def test_api_keys_are_created_once_listed_without_secret_and_revoked(
    client: TestClient, t: TenantFixture
) -> None:
    created = client.post("/v1/api-keys", json={"name": "ehr", "scopes": ["send"]}, headers=h(t))
    assert created.status_code == 201
    key = created.json()["key"]
    listing = client.get("/v1/api-keys", headers=h(t)).json()["data"]
    assert key not in str(listing)
    assert any(k["name"] == "ehr" for k in listing)
    sent = client.post(
        "/v1/messages",
        headers={"Authorization": f"Bearer {key}"},
        json={"from": "a@clinic.example", "to": ["p@example.net"], "text": "x"},
    )
    assert sent.status_code == 202
    assert client.delete(f"/v1/api-keys/{created.json()['id']}", headers=h(t)).status_code == 204
    again = client.post(
        "/v1/messages",
        headers={"Authorization": f"Bearer {key}"},
        json={"from": "a@clinic.example", "to": ["p@example.net"], "text": "x"},
    )
    assert again.status_code == 401


def test_bad_scope_is_rejected(client: TestClient, t: TenantFixture) -> None:
    resp = client.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=h(t))
    assert resp.status_code == 422


def test_management_needs_the_admin_scope_and_stays_within_the_tenant(
    client: TestClient, svc: Services, t: TenantFixture
) -> None:
    _, sender = svc.tenancy.create_api_key(t.id, "s", ["send", "read"], actor="test")
    assert client.get("/v1/api-keys", headers={"Authorization": f"Bearer {sender}"}).status_code == 403
    other = make_tenant(svc, "Other", "other.example")
    mine = client.post("/v1/api-keys", json={"name": "mine", "scopes": ["read"]}, headers=h(t)).json()
    assert client.delete(f"/v1/api-keys/{mine['id']}", headers=h(other)).status_code == 404
    assert mine["id"] not in str(client.get("/v1/api-keys", headers=h(other)).json())


def test_smtp_credentials_are_shown_once(client: TestClient, t: TenantFixture) -> None:
    created = client.post("/v1/smtp-credentials", json={"stream": "phi"}, headers=h(t))
    assert created.status_code == 201
    body = created.json()
    listing = client.get("/v1/smtp-credentials", headers=h(t)).json()["data"]
    assert body["password"] not in str(listing)
    assert listing[0]["stream"] == "phi"
    assert client.delete(f"/v1/smtp-credentials/{body['id']}", headers=h(t)).status_code == 204
