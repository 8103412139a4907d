"""Reports other MTAs send about the tenant's own domains (RFC 8460 §5.4 uploads and
mailed attachments): stored through the API or the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.client import AsyncSealmailClient, SealmailApiError, SealmailClient
from sealmail.config import Settings
from sealmail.intake.api.app import create_api

runner = CliRunner()
GZIP = {"Content-Type": "application/tlsrpt+gzip"}


def _report(
    domain: str = "clinic.example", report_id: str = "2026-12-02T00:00:00Z_clinic.example"
) -> dict[str, Any]:
    """The RFC 8460 §4.4 example, for our domain."""
    return {
        "organization-name": "Company-X",
        "date-range": {"start-datetime": "2026-12-02T00:00:00Z", "end-datetime": "2026-12-02T23:59:59Z"},
        "contact-info": "sts-reporting@company-x.example",
        "report-id": report_id,
        "policies": [
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-string": [
                        "version: STSv1",
                        "mode: testing",
                        "mx: *.mail.clinic.example",
                        "max_age: 86400",
                    ],
                    "policy-domain": domain,
                    "mx-host": ["*.mail.clinic.example"],
                },
                "summary": {"total-successful-session-count": 5326, "total-failure-session-count": 303},
                "failure-details": [
                    {
                        "result-type": "certificate-expired",
                        "sending-mta-ip": "2001:db8:abcd:0012::1",
                        "receiving-mx-hostname": "mx1.mail.clinic.example",
                        "failed-session-count": 100,
                    }
                ],
            }
        ],
    }


@pytest.fixture
def api(services: Services) -> TestClient:
    return TestClient(create_api(services), raise_server_exceptions=False)


def _auth(tenant: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def test_uploaded_report_is_stored_listed_and_shown(api: TestClient, tenant: TenantFixture) -> None:
    body = gzip.compress(json.dumps(_report()).encode())
    created = api.post("/v1/tlsrpt/reports", content=body, headers={**_auth(tenant), **GZIP})
    assert created.status_code == 201, created.text
    row = created.json()
    assert (row["organization"], row["policy_domain"], row["successes"], row["failures"]) == (
        "Company-X",
        "clinic.example",
        5326,
        303,
    )

    again = api.post("/v1/tlsrpt/reports", content=body, headers={**_auth(tenant), **GZIP})
    assert again.json()["id"] == row["id"]  # the same report twice is one report

    listed = api.get("/v1/tlsrpt/reports", headers=_auth(tenant)).json()["data"]
    assert [r["id"] for r in listed] == [row["id"]]
    shown = api.get(f"/v1/tlsrpt/reports/{row['id']}", headers=_auth(tenant)).json()
    assert shown["report"]["policies"][0]["failure-details"][0]["result-type"] == "certificate-expired"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (
            json.dumps(_report(domain="someone-else.example")).encode(),
            {"Content-Type": "application/tlsrpt+json"},
            422,
        ),
        (b"\x1f\x8b not gzip at all", GZIP, 422),
        (json.dumps({"organization-name": "X"}).encode(), {"Content-Type": "application/json"}, 422),
        (json.dumps(_report()).encode(), {"Content-Type": "text/plain"}, 415),
        (b"[" * 1_100_000, {"Content-Type": "application/json"}, 413),
    ],
    ids=["foreign-domain", "bad-gzip", "missing-fields", "media-type", "too-large"],
)
def test_bad_uploads_are_problems_not_500s(
    api: TestClient, tenant: TenantFixture, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = api.post("/v1/tlsrpt/reports", content=body, headers={**_auth(tenant), **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get("/v1/tlsrpt/reports", headers=_auth(tenant)).json()["data"] == []


def test_cli_imports_and_lists_a_mailed_report(
    settings: Settings, tenant: TenantFixture, tmp_path: Path
) -> None:
    env = {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.resolved_database_url}
    path = tmp_path / "company-x!clinic.example!1764633600!1764719999.json.gz"
    path.write_bytes(gzip.compress(json.dumps(_report()).encode()))

    imported = runner.invoke(sealmail_cli, ["tlsrpt", "import", str(path), "--tenant", tenant.id], env=env)
    assert imported.exit_code == 0, imported.output
    listed = runner.invoke(sealmail_cli, ["tlsrpt", "list", "--tenant", tenant.id], env=env)
    assert listed.exit_code == 0, listed.output
    assert "clinic.example  Company-X  ok=5326 failed=303" in listed.output

    path.write_bytes(b"{}")
    refused = runner.invoke(sealmail_cli, ["tlsrpt", "import", str(path), "--tenant", tenant.id], env=env)
    assert refused.exit_code == 2
    assert "not an RFC 8460 report" in refused.output


def test_clients_upload_list_and_read_over_real_http(services: Services, tenant: TenantFixture) -> None:
    with ApiServer(services) as server, SealmailClient(server.url, tenant.api_key, timeout=10) as sm:
        row = sm.upload_tls_report(_report())
        assert sm.get_tls_report(row["id"])["report"]["report-id"] == _report()["report-id"]
        with pytest.raises(SealmailApiError) as refused:
            sm.upload_tls_report(_report(domain="someone-else.example", report_id="other"))
        assert refused.value.status == 422

        async def go() -> list[str]:
            async with AsyncSealmailClient(server.url, tenant.api_key, timeout=10) as asm:
                return [r["id"] for r in await asm.list_tls_reports()]

        assert asyncio.run(go()) == [row["id"]]
