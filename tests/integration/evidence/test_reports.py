"""The report catalogue through the API: each report from real activity, narrowed by the
filters, as CSV and as a PDF whose text (pypdf) carries the same rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from tests.conftest import TenantFixture, make_tenant

from sealmail.app import Services
from sealmail.intake.api.app import create_api

PERIOD = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services)) as client:
        yield client


def _send(http: TestClient, tenant: TenantFixture, **fields: object) -> dict[str, object]:
    body = {"from": "results@clinic.example", "to": ["ann@example.org"], "subject": "Hi", "text": "Hello"}
    body.update(fields)
    resp = http.post("/v1/messages", json=body, headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert resp.status_code in (200, 201, 202), resp.text
    return dict(resp.json())


def _csv(http: TestClient, tenant: TenantFixture, name: str, **params: str) -> list[dict[str, str]]:
    resp = http.get(
        f"/v1/evidence/reports/{name}",
        params={**PERIOD, **params},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(resp.text)))


def test_secured_report_filters_by_sender_domain_stream_and_campaign(
    http: TestClient, services: Services, tenant: TenantFixture
) -> None:
    a = _send(http, tenant, tags=["flu-2026"], stream="broadcast")
    b = _send(http, tenant, **{"from": "billing@clinic.example", "to": ["bob@other.example"]})
    rows = _csv(http, tenant, "secured")
    assert {r["message_id"] for r in rows} == {a["id"], b["id"]}
    assert [r["message_id"] for r in _csv(http, tenant, "secured", sender="billing@clinic.example")] == [
        b["id"]
    ]
    assert [r["message_id"] for r in _csv(http, tenant, "secured", recipient_domain="other.example")] == [
        b["id"]
    ]
    assert [r["message_id"] for r in _csv(http, tenant, "secured", stream="broadcast")] == [a["id"]]
    assert [r["message_id"] for r in _csv(http, tenant, "secured", campaign="flu-2026")] == [a["id"]]
    assert _csv(http, tenant, "secured", campaign="nothing") == []
    # Another tenant's report holds none of it.
    other = make_tenant(services, "Other", "other-clinic.example")
    assert _csv(http, other, "secured") == []

    pdf = http.get(
        "/v1/evidence/reports/secured",
        params={**PERIOD, "format": "pdf", "campaign": "flu-2026"},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "How each recipient was secured".lower() in text.lower()
    assert str(a["id"]) in text and str(b["id"]) not in text and "campaign flu-2026" in text


@pytest.mark.hipaa("164.308(a)(1)(ii)(D)")
def test_access_logins_dlp_and_quarantine_reports(http: TestClient, tenant: TenantFixture) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    assert (
        http.patch(
            "/v1/tenant/policy", json={"dlp": {"actions": {"ssn": "quarantine"}}}, headers=h
        ).status_code
        == 200
    )
    held = _send(http, tenant, text="Patient SSN 123-45-6780", stream="phi")
    assert held["status"] == "quarantined"
    assert http.post(f"/v1/messages/{held['id']}/release", headers=h).status_code == 200
    read = _send(http, tenant)
    assert http.get(f"/v1/messages/{read['id']}/content", headers=h).status_code == 200
    bad = tenant.api_key[:-4] + ("AAAA" if not tenant.api_key.endswith("AAAA") else "BBBB")
    assert http.get("/v1/messages", headers={"Authorization": f"Bearer {bad}"}).status_code == 401

    access = _csv(http, tenant, "access")
    assert [(r["action"], r["target"], r["actor"]) for r in access] == [
        ("message:content_read", read["id"], tenant.principal.credential_id)
    ]
    logins = _csv(http, tenant, "logins")
    assert [r["action"] for r in logins] == ["api_key:rejected"]
    dlp = _csv(http, tenant, "dlp")
    # Released, the message still needs message-level protection: that is its action now.
    assert [(r["message_id"], r["dlp_action"]) for r in dlp] == [(held["id"], "require_encryption")]
    assert "ssn in" in dlp[0]["findings"] and "123-45" not in dlp[0]["findings"]
    decisions = _csv(http, tenant, "quarantine")
    assert [(r["action"], r["target"]) for r in decisions] == [
        ("message:quarantined", held["id"]),
        ("message:released", held["id"]),
    ]
    # Each export is itself audited.
    assert _csv(http, tenant, "access", since="2100-01-01T00:00:00Z", until="2100-01-02T00:00:00Z") == []


def test_report_errors_are_problems(http: TestClient, tenant: TenantFixture) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    for params, status in (
        ({}, 400),  # the secured report needs a period
        ({"since": "2026-01-01T00:00:00Z"}, 400),
        # No offset: a 422 naming the parameter, as every API datetime (web.models.Instant).
        ({"since": "2026-01-01T00:00:00", "until": "2026-02-01T00:00:00"}, 422),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 400),
        ({**PERIOD, "format": "xls"}, 422),
    ):
        resp = http.get("/v1/evidence/reports/secured", params=params, headers=h)
        assert resp.status_code == status, (params, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
