"""Suppressions, recipient keys and webhooks in the console over real HTTP on SQLite and
PostgreSQL: each change goes through its feature's service, audited with the console user,
and never reaches another tenant's rows."""

from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import Console, Person, csrf, enrol
from tests.support.gpg import GnuPG
from tests.support.ports import unused_port

from sealmail.app import Services
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role


@pytest.fixture
def admin(console: Console, tenant: TenantFixture) -> Person:
    _, token = console.users.invite(tenant.id, "admin@clinic.example", "", Role.ADMINISTRATOR, actor="test")
    return enrol(console, token, "admin@clinic.example")


def audited(services: Services, action: str) -> list[str]:
    with services.engine.connect() as conn:
        return list(conn.execute(sa.select(audit_log.c.actor).where(audit_log.c.action == action)).scalars())


def test_suppressions_are_added_found_and_removed(
    console: Console, admin: Person, services: Services
) -> None:
    page = admin.http.get("/console/suppressions")
    r = admin.http.post(
        "/console/suppressions", data={"csrf": csrf(page), "address": "Gone@Example.net", "stream": "*"}
    )
    assert r.status_code == 303
    found = admin.http.get("/console/suppressions", params={"address": "gone@example.net"})
    assert 'data-address="gone@example.net"' in found.text
    bad = admin.http.post(
        "/console/suppressions", data={"csrf": csrf(page), "address": "nope", "stream": "*"}
    )
    assert bad.status_code == 303 and "error=" in bad.headers["location"]
    assert 'id="suppressions-error"' in admin.http.get(bad.headers["location"]).text
    gone = admin.http.post(
        "/console/suppressions/remove",
        data={"csrf": csrf(page), "address": "gone@example.net", "stream": "*"},
    )
    assert gone.status_code == 303
    assert 'data-address="gone@example.net"' not in admin.http.get("/console/suppressions").text
    assert any(a.startswith("user:") for a in audited(services, "suppression:removed")), audited(
        services, "suppression:removed"
    )


def test_recipient_keys_are_listed_by_address_and_deleted(
    console: Console, admin: Person, services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Pat <pat@example.net>")
        armored = gpg.export(fpr).decode()
    finally:
        gpg.close()
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    assert console.client().post("/v1/keys", json={"key": armored}, headers=h).status_code == 201
    page = admin.http.get("/console/recipient-keys", params={"address": "pat@example.net"})
    assert fpr in page.text
    key_id = page.text.split('data-key="', 1)[1].split('"', 1)[0]
    other = make_tenant(services, "Other", "other.example")
    _, token = console.users.invite(other.id, "boss@other.example", "", Role.OWNER, actor="test")
    stranger = enrol(console, token, "boss@other.example")
    assert fpr not in stranger.http.get("/console/recipient-keys").text
    spage = stranger.http.get("/console/recipient-keys")
    assert (
        stranger.http.post(f"/console/recipient-keys/{key_id}/delete", data={"csrf": csrf(spage)}).status_code
        == 404
    )
    assert (
        admin.http.post(f"/console/recipient-keys/{key_id}/delete", data={"csrf": csrf(page)}).status_code
        == 303
    )
    assert fpr not in admin.http.get("/console/recipient-keys").text
    assert any(a.startswith("user:") for a in audited(services, "recipient_key:deleted"))


def test_webhook_health_shows_failures_and_a_delivery_is_replayed(
    console: Console, admin: Person, services: Services, tenant: TenantFixture
) -> None:
    port = unused_port()  # nobody listens there: the endpoint fails
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    api = console.client()
    made = api.post("/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:{port}/hook"}, headers=h)
    assert made.status_code == 201, made.text
    endpoint = made.json()["id"]
    tested = api.post(f"/v1/webhook-endpoints/{endpoint}/test", headers=h)
    assert tested.status_code == 200 and tested.json()["ok"] is False, tested.text
    listing = admin.http.get("/console/webhooks")
    assert f'data-endpoint="{endpoint}"' in listing.text
    page = admin.http.get(f"/console/webhooks/{endpoint}")
    delivery = tested.json()["delivery_id"]
    assert f'data-delivery="{delivery}"' in page.text
    r = admin.http.post(f"/console/webhooks/deliveries/{delivery}/replay", data={"csrf": csrf(page)})
    assert r.status_code == 303 and r.headers["location"] == f"/console/webhooks/{endpoint}"
    assert any(a.startswith("user:") for a in audited(services, "webhook_delivery:replayed"))
    assert admin.http.get("/console/webhooks/whe_none").status_code == 404
