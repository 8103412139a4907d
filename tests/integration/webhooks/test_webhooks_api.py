"""The management API: secrets shown once, HTTPS rule, test-send, log, replay, tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from tests.conftest import TenantFixture, make_tenant
from tests.integration.webhooks.conftest import api_client, dispatch, send_message
from tests.integration.webhooks.receiver import Receiver

from sealmail.app import Services
from sealmail.store.tables import audit_log
from sealmail.web import problems
from sealmail.webhooks import api as webhooks_api


@pytest.fixture
def client(services: Services) -> TestClient:
    return api_client(services)


def h(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


def _create(client: TestClient, t: TenantFixture, url: str, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/webhook-endpoints", json={"url": url, **body}, headers=h(t))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_secret_is_shown_once_and_changes_are_audited(
    client: TestClient, services: Services, tenant: TenantFixture, receiver: Receiver
) -> None:
    created = _create(client, tenant, receiver.url, streams=["transactional"])
    assert created["secret"].startswith("whsec_")
    assert created["payload"] == "thin"
    listed = client.get("/v1/webhook-endpoints", headers=h(tenant)).json()["data"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert all("secret" not in e for e in listed)
    ep_id = created["id"]
    assert (
        client.patch(f"/v1/webhook-endpoints/{ep_id}", json={"payload": "full"}, headers=h(tenant)).json()[
            "payload"
        ]
        == "full"
    )
    rotated = client.post(f"/v1/webhook-endpoints/{ep_id}/rotate-secret", headers=h(tenant)).json()
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_expires_at"]
    assert client.delete(f"/v1/webhook-endpoints/{ep_id}", headers=h(tenant)).status_code == 204
    assert client.get(f"/v1/webhook-endpoints/{ep_id}", headers=h(tenant)).status_code == 404
    with services.engine.connect() as conn:
        actions = conn.execute(sa.select(audit_log.c.action).where(audit_log.c.target == ep_id)).scalars()
        assert set(actions) == {
            "webhook_endpoint:created",
            "webhook_endpoint:updated",
            "webhook_endpoint:secret_rotated",
            "webhook_endpoint:deleted",
        }
    with services.engine.connect() as conn:  # deleting removes the sealed secrets with the row
        blob = conn.execute(sa.text("SELECT secret FROM webhook_endpoints")).all()
    assert blob == []


def test_secret_is_sealed_at_rest(client: TestClient, services: Services, tenant: TenantFixture) -> None:
    created = _create(client, tenant, "https://hooks.example.org/x")
    with services.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret FROM webhook_endpoints")).scalar_one()
    assert created["secret"].encode() not in bytes(stored)
    assert created["secret"].split("_", 1)[1].encode() not in bytes(stored)


@pytest.mark.parametrize("streams", [[], ["phi"], ["phi", "transactional"]])
def test_plain_http_is_refused_for_phi_or_all_streams_without_the_test_setting(
    services: Services, tenant: TenantFixture, streams: list[str]
) -> None:
    strict = services.settings.model_copy(update={"allow_loopback_fetch": False})
    app = FastAPI()
    problems.install(app)
    svc = Services(**{**services.__dict__, "settings": strict})
    app.include_router(
        webhooks_api.router(svc.webhook_endpoints, svc.webhook_dispatcher, Depends(lambda: tenant.principal))
    )
    c = TestClient(app, raise_server_exceptions=False)
    r = c.post("/v1/webhook-endpoints", json={"url": "http://hooks.example.org/x", "streams": streams})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "url"
    ok = c.post("/v1/webhook-endpoints", json={"url": "http://hooks.example.org/x", "streams": ["broadcast"]})
    assert ok.status_code == 201


def test_test_send_reaches_the_receiver_signed_and_is_logged(
    client: TestClient, tenant: TenantFixture, receiver: Receiver
) -> None:
    created = _create(client, tenant, receiver.url)
    result = client.post(f"/v1/webhook-endpoints/{created['id']}/test", headers=h(tenant)).json()
    assert result["ok"] is True and result["status_code"] == 204
    body = Webhook(created["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert body["type"] == "webhook.test"
    log = client.get(f"/v1/webhook-endpoints/{created['id']}/deliveries", headers=h(tenant)).json()["data"]
    assert log[0]["id"] == result["delivery_id"] and log[0]["log"][0]["status_code"] == 204


def test_delivery_log_and_replay_of_one_delivery(
    client: TestClient, services: Services, tenant: TenantFixture, receiver: Receiver
) -> None:
    created = _create(client, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    receiver.fail(1, status=500)
    dispatch(services)
    [delivery] = client.get(f"/v1/webhook-endpoints/{created['id']}/deliveries", headers=h(tenant)).json()[
        "data"
    ]
    assert delivery["status"] == "pending" and delivery["log"][0]["status_code"] == 500

    replayed = client.post(f"/v1/webhook-deliveries/{delivery['id']}/replay", headers=h(tenant))
    assert replayed.status_code == 202
    dispatch(services)  # due immediately again: no need to wait out the 5 s step

    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery["webhook_id"]] * 2
    since = client.post(
        f"/v1/webhook-endpoints/{created['id']}/replay",
        params={"since": "2020-01-01T00:00:00Z"},
        headers=h(tenant),
    )
    assert since.status_code == 202 and since.json() == {"queued": 1}


def test_endpoints_and_deliveries_of_another_tenant_are_not_found(
    client: TestClient, services: Services, tenant: TenantFixture, receiver: Receiver
) -> None:
    mine = _create(client, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    dispatch(services)
    [delivery] = client.get(f"/v1/webhook-endpoints/{mine['id']}/deliveries", headers=h(tenant)).json()[
        "data"
    ]
    other = make_tenant(services, "Other Clinic", "other.example")

    assert client.get("/v1/webhook-endpoints", headers=h(other)).json()["data"] == []
    for method, path in [
        ("GET", f"/v1/webhook-endpoints/{mine['id']}"),
        ("PATCH", f"/v1/webhook-endpoints/{mine['id']}"),
        ("DELETE", f"/v1/webhook-endpoints/{mine['id']}"),
        ("POST", f"/v1/webhook-endpoints/{mine['id']}/rotate-secret"),
        ("POST", f"/v1/webhook-endpoints/{mine['id']}/test"),
        ("GET", f"/v1/webhook-endpoints/{mine['id']}/deliveries"),
        ("POST", f"/v1/webhook-deliveries/{delivery['id']}/replay"),
        ("POST", f"/v1/webhook-endpoints/{mine['id']}/replay?since=2020-01-01T00:00:00Z"),
    ]:
        kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        r = client.request(method, path, headers=h(other), **kwargs)
        assert r.status_code == 404, (method, path, r.status_code)
    assert len(receiver.requests) == 1  # the other tenant's test-send sent nothing
    assert client.get(f"/v1/webhook-endpoints/{mine['id']}", headers=h(tenant)).status_code == 200
