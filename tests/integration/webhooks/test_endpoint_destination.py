"""Webhook endpoints on internal addresses are refused when created, not only at send (issue 11 §7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.webhooks.conftest import api_client
from tests.support.dns_server import DnsServer

from sealmail.app import Services, build_services


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add("hooks.rebind.example", "A", "127.0.0.1")
        server.add("meta.rebind.example", "A", "93.184.216.34")
        server.add("meta.rebind.example", "A", "169.254.169.254")
        server.add("public.rebind.example", "A", "93.184.216.34")
        yield server


@pytest.fixture
def production(tmp_path: Path, db_url: str, dns: DnsServer) -> Iterator[tuple[TestClient, TenantFixture]]:
    """A deployment without the test-only loopback allowance, resolving through ``dns``."""
    settings = make_settings(
        tmp_path,
        db_url,
        allow_loopback_fetch=False,
        dns_nameservers=[f"{dns.address[0]}:{dns.address[1]}"],
    )
    services = build_services(settings)
    try:
        yield api_client(services), make_tenant(services)
    finally:
        services.close()


def _post(client: TestClient, tenant: TenantFixture, url: str) -> tuple[int, dict[str, object]]:
    r = client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "streams": ["transactional"]},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    return r.status_code, r.json()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]:8443/hook", "loopback"),
        ("https://10.0.0.1/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fe80::1]/hook", "link_local"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://localhost:9000/hook", "loopback"),
        ("https://db.internal/hook", "internal"),
        ("https://intranet/hook", "internal"),
        ("https://hooks.rebind.example/hook", "loopback"),
        ("https://meta.rebind.example/hook", "metadata"),
    ],
)
def test_internal_destinations_are_refused_at_creation(
    production: tuple[TestClient, TenantFixture], url: str, kind: str
) -> None:
    client, tenant = production
    status, body = _post(client, tenant, url)
    assert status == 422, body
    assert body["type"].endswith("validation-failed")  # type: ignore[union-attr]
    [error] = body["errors"]  # type: ignore[misc]
    assert error["field"] == "url"
    assert kind in error["message"] and "public Internet addresses" in error["message"]
    listed = client.get("/v1/webhook-endpoints", headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert listed.json()["data"] == []


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/hook",  # inet_aton shorthand, a name to DNS (NXDOMAIN: was accepted)
        "https://127.0.0.0x1/hook",
        "https://1.0x7f/hook",
        "https://hooks.example.org/päth",  # the client sends only percent-encoded ASCII
        "https://hooks.example.org:0/hook",
    ],
)
def test_urls_the_sending_client_would_refuse_are_refused_at_creation(
    production: tuple[TestClient, TenantFixture], url: str
) -> None:
    # One parser: an endpoint accepted here but refused by SafeHttpClient at send failed
    # every attempt until it was disabled.
    client, tenant = production
    status, body = _post(client, tenant, url)
    assert status == 422, body
    [error] = body["errors"]  # type: ignore[misc]
    assert error["field"] == "url"
    assert "cannot be fetched" in error["message"]


def test_public_and_not_yet_resolvable_names_are_accepted(
    production: tuple[TestClient, TenantFixture],
) -> None:
    client, tenant = production
    assert _post(client, tenant, "https://public.rebind.example/hook")[0] == 201
    # No record yet (NXDOMAIN): accepted; the send-time check still vets the address.
    assert _post(client, tenant, "https://not-yet.rebind.example/hook")[0] == 201


def test_changing_the_url_to_an_internal_one_is_refused(
    production: tuple[TestClient, TenantFixture],
) -> None:
    client, tenant = production
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    status, created = _post(client, tenant, "https://public.rebind.example/hook")
    assert status == 201
    r = client.patch(
        f"/v1/webhook-endpoints/{created['id']}", json={"url": "https://10.1.2.3/x"}, headers=auth
    )
    assert r.status_code == 422 and "private" in r.text
    assert (
        client.get(f"/v1/webhook-endpoints/{created['id']}", headers=auth)
        .json()["url"]
        .startswith("https://public.")
    )


def test_the_test_only_loopback_allowance_admits_loopback_and_nothing_more(
    services: Services, tenant: TenantFixture
) -> None:
    client = api_client(services)
    assert _post(client, tenant, "https://127.0.0.1:8443/hook")[0] == 201
    assert _post(client, tenant, "https://10.0.0.1/hook")[0] == 422
    assert _post(client, tenant, "http://169.254.169.254/")[0] == 422
