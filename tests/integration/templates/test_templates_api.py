"""Stored templates over HTTP: versions, preview, errors as RFC 9457, tenant isolation."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.templates.conftest import APPOINTMENT, auth

from sealmail.app import Services
from sealmail.store.tables import audit_log


def test_created_template_is_listed_and_read_back_as_version_one(
    client: TestClient, tenant: TenantFixture
) -> None:
    resp = client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"] == 1
    [listed] = client.get("/v1/templates", headers=auth(tenant)).json()["data"]
    assert listed["name"] == "appointment" and listed["version"] == 1
    got = client.get("/v1/templates/appointment", headers=auth(tenant)).json()
    assert got["subject"] == APPOINTMENT["subject"] and got["versions"] == [1]


def test_put_adds_a_version_that_becomes_active_and_old_versions_stay_readable(
    client: TestClient, tenant: TenantFixture
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    resp = client.put(
        "/v1/templates/appointment",
        json={"subject": "Reminder: {{ when }}", "text": "See you {{ when }}"},
        headers=auth(tenant),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == 2
    active = client.get("/v1/templates/appointment", headers=auth(tenant)).json()
    assert active["version"] == 2 and active["versions"] == [1, 2]
    first = client.get("/v1/templates/appointment?version=1", headers=auth(tenant)).json()
    assert first["subject"] == APPOINTMENT["subject"]
    [listed] = client.get("/v1/templates", headers=auth(tenant)).json()["data"]
    assert listed["version"] == 2


def test_creating_an_existing_name_is_a_conflict_and_put_on_a_missing_one_is_404(
    client: TestClient, tenant: TenantFixture
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    again = client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    missing = client.put("/v1/templates/nope", json={"subject": "s", "text": "t"}, headers=auth(tenant))
    assert missing.status_code == 404


def test_template_with_a_syntax_error_is_refused_with_the_part_and_line(
    client: TestClient, tenant: TenantFixture
) -> None:
    resp = client.post(
        "/v1/templates",
        json={"name": "broken", "subject": "ok", "html": "<p>\n{% for x in %}</p>"},
        headers=auth(tenant),
    )
    assert resp.status_code == 422
    [error] = resp.json()["errors"]
    assert error["field"] == "html" and error["message"].startswith("line 2:")


def test_preview_renders_escaped_html_inlined_css_and_a_text_part(
    client: TestClient, tenant: TenantFixture
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    resp = client.post(
        "/v1/templates/appointment/preview",
        json={"template_data": {"first_name": "<b>Ana</b>", "when": "June 1", "ref": "a1"}},
        headers=auth(tenant),
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["subject"] == "Appointment on June 1"
    assert "Dear &lt;b&gt;Ana&lt;/b&gt;" in out["html"]
    assert '<p style="margin: 0;">' in out["html"]
    assert "Manage appointment (https://portal.clinic.example/a/a1)" in out["text"]


def test_preview_with_a_missing_variable_is_a_422_naming_it(
    client: TestClient, tenant: TenantFixture
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    resp = client.post(
        "/v1/templates/appointment/preview", json={"template_data": {"when": "x"}}, headers=auth(tenant)
    )
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("/validation-failed")
    assert "'first_name' is undefined" in resp.json()["errors"][0]["message"]


def test_delete_removes_every_version_and_is_audited(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    client.put("/v1/templates/appointment", json={"subject": "s", "text": "t"}, headers=auth(tenant))
    assert client.delete("/v1/templates/appointment", headers=auth(tenant)).status_code == 204
    assert client.get("/v1/templates/appointment", headers=auth(tenant)).status_code == 404
    with services.engine.connect() as conn:
        actions = [a for (a,) in conn.execute(sa.select(audit_log.c.action).order_by(audit_log.c.seq))]
    assert actions[-3:] == ["template:created", "template:version_created", "template:deleted"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/templates/appointment", None),
        ("PUT", "/v1/templates/appointment", {"subject": "s", "text": "t"}),
        ("DELETE", "/v1/templates/appointment", None),
        ("POST", "/v1/templates/appointment/preview", {"template_data": {}}),
    ],
)
def test_another_tenants_template_is_not_found(
    client: TestClient, services: Services, tenant: TenantFixture, method: str, path: str, body: object
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    other = make_tenant(services, "Other", "other.example")
    resp = client.request(method, path, json=body, headers=auth(other))
    assert resp.status_code == 404
    assert client.get("/v1/templates", headers=auth(other)).json()["data"] == []


def test_template_endpoints_need_an_api_key(client: TestClient) -> None:
    assert client.get("/v1/templates").status_code == 401
