"""DLP and key discovery driving SecureLine: PHI forces encryption, WKD finds keys, block and quarantine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.gpg import GnuPG
from tests.support.https_server import HttpsServer, Route
from tests.support.smtp_sink import SmtpSink

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.intake.api.app import create_api
from sealmail.messages.schemas import message_body
from sealmail.net.http_client import SafeHttpClient
from sealmail.secureline.discovery import Discovery
from sealmail.secureline.wkd import wkd_hash

PHI_TEXT = "Patient SSN 123-45-6780. Diagnosis code E11.9 (type 2 diabetes)."


@dataclass
class World:
    services: Services
    tenant: TenantFixture
    sink: SmtpSink
    client: TestClient

    def send(self, **over: Any) -> dict[str, Any]:
        body = {
            "from": "results@clinic.example",
            "to": ["pat@tls.example"],
            "subject": "Update",
            "text": "Your appointment is confirmed.",
            "stream": "phi",
            **over,
        }
        resp = self.client.post(
            "/v1/messages", json=body, headers={"Authorization": f"Bearer {self.tenant.api_key}"}
        )
        assert resp.status_code in (202, 422), resp.text
        return dict(resp.json())

    def deliver(self) -> None:
        async def run() -> None:
            transport = build_transport(self.services.settings)
            try:
                await build_worker(self.services, transport).run_until_idle(timeout=60)
            finally:
                await transport.close()

        asyncio.run(run())

    def delivered(self, mid: str) -> dict[str, Any]:
        events = self.services.messages.list_events(
            self.tenant.principal, message_id=mid, type_="message.delivered"
        ).data
        return dict(events[0]["data"]["secureline"]) if events else {}


@pytest.fixture
def world(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[World]:
    sink = mx.start({"127.0.0.2": {"cert": ca.issue("mx.tls.example")}})["127.0.0.2"]
    dns.add("tls.example", "MX", "10 mx.tls.example.")
    dns.add("mx.tls.example", "A", "127.0.0.2")
    settings = make_settings(
        tmp_path,
        db_url,
        outbound_mode="mx",
        dns_nameservers=[f"{dns.address[0]}:{dns.address[1]}"],
        mx_port=mx.port,
        tls_ca_file=ca.ca_file,
        mta_sts_enabled=False,
        key_discovery="off",
    )
    services = build_services(settings)
    client = TestClient(create_api(services), raise_server_exceptions=False)
    yield World(services, make_tenant(services), sink, client)
    services.close()


def test_phi_found_by_dlp_goes_to_the_portal_instead_of_plain_tls(world: World) -> None:
    mid = world.send(text=PHI_TEXT)["id"]
    world.deliver()
    decision = world.delivered(mid)
    assert decision["method"] == "portal"
    assert "DLP found" in decision["reason"] and "ssn in text" in decision["reason"]
    [notice] = world.sink.wait_for(1)
    assert b"123-45-6780" not in notice.data and b"E11.9" not in notice.data
    stored = message_body(world.services.messages.get(world.tenant.principal, mid))
    assert stored["recipients"][0]["status"] == "delivered"


def test_the_same_message_without_phi_goes_over_verified_tls(world: World) -> None:
    mid = world.send()["id"]
    world.deliver()
    assert world.delivered(mid)["method"] == "tls"


def test_dlp_block_refuses_the_message_naming_the_detector_not_the_value(world: World) -> None:
    h = {"Authorization": f"Bearer {world.tenant.api_key}"}
    resp = world.client.patch("/v1/tenant/policy", json={"dlp": {"actions": {"ssn": "block"}}}, headers=h)
    assert resp.status_code == 200, resp.text
    refused = world.send(text=PHI_TEXT)
    assert refused["type"].endswith("policy-rejected")
    assert any(f["detector"] == "ssn" for f in refused["findings"])
    assert "123-45-6780" not in str(refused)
    assert world.client.get("/v1/messages", headers=h).json()["data"] == []


def test_quarantined_message_waits_until_released(world: World) -> None:
    h = {"Authorization": f"Bearer {world.tenant.api_key}"}
    world.client.patch("/v1/tenant/policy", json={"dlp": {"actions": {"ssn": "quarantine"}}}, headers=h)
    accepted = world.send(text=PHI_TEXT)
    assert accepted["status"] == "quarantined"
    world.deliver()
    assert world.sink.messages == []
    held = world.client.get("/v1/quarantine", headers=h).json()["data"]
    assert [m["id"] for m in held] == [accepted["id"]]
    assert held[0]["dlp"]["findings"][0]["detector"] == "ssn"
    assert world.client.post(f"/v1/messages/{accepted['id']}/release", headers=h).status_code == 200
    world.deliver()
    assert world.delivered(accepted["id"])["method"] == "portal"  # still PHI: message-level protection


def test_unsafe_tenant_mrn_pattern_is_refused(world: World) -> None:
    h = {"Authorization": f"Bearer {world.tenant.api_key}"}
    resp = world.client.patch("/v1/tenant/policy", json={"dlp": {"mrn_patterns": ["(a+)+$"]}}, headers=h)
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "dlp"


def test_policy_can_force_the_portal(world: World) -> None:
    h = {"Authorization": f"Bearer {world.tenant.api_key}"}
    world.client.patch("/v1/tenant/policy", json={"secureline": {"force_portal": True}}, headers=h)
    mid = world.send()["id"]
    world.deliver()
    assert world.delivered(mid) == {
        "method": "portal",
        "reason": "portal: policy sends every message through the portal",
    }


def test_key_uploaded_through_the_api_is_used_and_listed(world: World, tmp_path: Path) -> None:
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Pat <pat@tls.example>")
        h = {"Authorization": f"Bearer {world.tenant.api_key}"}
        up = world.client.post("/v1/keys", json={"key": gpg.export(fpr).decode()}, headers=h)
        assert up.status_code == 201, up.text
        listed = world.client.get("/v1/keys", params={"address": "pat@tls.example"}, headers=h).json()["data"]
        assert listed[0]["fingerprint"] == fpr
        mid = world.send(text=PHI_TEXT)["id"]
        world.deliver()
        assert world.delivered(mid)["method"] == "pgp"
        other = make_tenant(world.services, "Other", "other.example")
        assert (
            world.client.get(
                f"/v1/keys/{listed[0]['id']}", headers={"Authorization": f"Bearer {other.api_key}"}
            ).status_code
            == 404
        )
    finally:
        gpg.close()


def test_wkd_discovered_key_is_used_and_cached(world: World, tmp_path: Path, ca: TestCA) -> None:
    gpg = GnuPG(tmp_path / "gnupg")
    https = HttpsServer(ca.issue("openpgpkey.tls.example")).start()
    try:
        fpr = gpg.gen_key("Pat <pat@tls.example>")
        path = f"/.well-known/openpgpkey/tls.example/hu/{wkd_hash('pat')}"
        https.set_route(
            path, Route(200, gpg.export(fpr, armor=False), {"Content-Type": "application/octet-stream"})
        )
        client = SafeHttpClient(
            None,
            allow_loopback=True,
            ca_file=ca.ca_file,
            host_overrides={"openpgpkey.tls.example": https.address},
        )
        world.services.discovery = Discovery(world.services.keydir, client)
        world.services.settings = world.services.settings.model_copy(update={"key_discovery": "on"})
        mid = world.send(text=PHI_TEXT)["id"]
        world.deliver()
        decision = world.delivered(mid)
        assert decision["method"] == "pgp"
        assert decision["reason"].endswith("from WKD")
        hits = len(https.requests)
        mid2 = world.send(text=PHI_TEXT)["id"]
        world.deliver()
        assert world.delivered(mid2)["method"] == "pgp"
        assert len(https.requests) == hits  # cached: no second fetch
    finally:
        https.stop()
        gpg.close()


def test_protection_secure_sends_through_the_portal_where_tls_would_do_and_status_follows(
    world: World,
) -> None:
    h = {"Authorization": f"Bearer {world.tenant.api_key}"}
    auto = world.send()["id"]
    secure = world.send(protection="secure")["id"]
    assert world.client.get(f"/v1/messages/{secure}", headers=h).json()["status"] == "queued"
    world.deliver()
    assert world.delivered(auto)["method"] == "tls"
    decision = world.delivered(secure)
    assert decision["method"] == "portal" and "sender chose to send securely" in decision["reason"]
    got = world.client.get(f"/v1/messages/{secure}", headers=h).json()
    assert got["protection"] == "secure" and got["status"] == "delivered"
    listed = world.client.get("/v1/messages", headers=h).json()["data"]
    assert {m["id"]: m["status"] for m in listed} == {auto: "delivered", secure: "delivered"}
    bad = world.client.post(
        "/v1/messages", headers=h,
        json={"from": "results@clinic.example", "to": ["pat@tls.example"], "text": "x", "protection": "tls"},
    )  # fmt: skip
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    doc = world.client.get("/openapi.json").json()["components"]["schemas"]["MessageIn"]
    assert doc["properties"]["protection"]["default"] == "auto"
