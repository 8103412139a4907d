"""A hostile template over HTTP: refused with a problem body, never a 500 or a held worker."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.templates.conftest import auth

from sealmail.templates import budget


def test_a_template_nested_past_the_parser_is_a_422_when_saved(
    client: TestClient, tenant: TenantFixture
) -> None:
    deep = "{% if 1 %}" * 3000 + "{% endif %}" * 3000
    resp = client.post(
        "/v1/templates", json={"name": "deep", "subject": "s", "html": deep}, headers=auth(tenant)
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"] == [
        {"field": "html", "message": "nested too deeply to compile; flatten the template"}
    ]
    assert client.get("/v1/templates/deep", headers=auth(tenant)).status_code == 404  # nothing stored


def test_a_template_that_spins_is_a_422_within_the_budget(client: TestClient, tenant: TenantFixture) -> None:
    spin = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    bomb = "{{ 'x' * 3000000000 }}"
    for name, text in (("spin", spin), ("bomb", bomb)):
        saved = client.post(
            "/v1/templates", json={"name": name, "subject": "s", "text": text}, headers=auth(tenant)
        )
        assert saved.status_code == 201, saved.text
        started = time.monotonic()
        resp = client.post(f"/v1/templates/{name}/preview", json={"template_data": {}}, headers=auth(tenant))
        assert resp.status_code == 422, resp.text
        assert time.monotonic() - started < budget.MAX_SECONDS + 3
        [error] = resp.json()["errors"]
        assert error["field"] == "text" and ("steps" in error["message"] or "larger than" in error["message"])
