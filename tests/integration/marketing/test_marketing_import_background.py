"""Background CSV imports over the API: ``?background=true`` answers 202 with the import's id
at once; its progress (rows of total) and its per-row error report, paged and as CSV, are
read while and after it runs.  Without the flag the upload still waits for the report."""

from typing import Any

from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys, keys_for
from tests.support.waiting import wait_until

from sealmail.app import Services

# 1,500 contacts over two chunks, every third row with a bad age: 500 rows in the report.
ROWS = 1500
CSV = "email,age\r\n" + "".join(f"p{i}@example.net,{'old' if i % 3 == 0 else 40}\r\n" for i in range(ROWS))


def finished(client: TestClient, keys: Keys, import_id: str) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def done() -> bool:
        got.update(client.get(f"/v1/marketing/imports/{import_id}", headers=keys.reader).json())
        return got["status"] != "processing"

    wait_until(done, 60, f"import {import_id} did not finish")
    return got


def test_a_background_import_reports_progress_then_a_paged_error_report(
    client: TestClient, declared: Keys
) -> None:
    started = client.post(
        "/v1/marketing/contacts/import?background=true",
        content=CSV.encode(),
        headers={**declared.sender, "Content-Type": "text/csv"},
    )
    assert started.status_code == 202, started.text
    first = started.json()
    assert first["total"] == ROWS and first["rows"] <= ROWS
    done = finished(client, declared, first["id"])
    assert done["status"] == "completed"
    assert (done["rows"], done["total"], done["created"], done["failed"]) == (ROWS, ROWS, 1000, 500)
    assert done["error_count"] == 500
    page = client.get(
        f"/v1/marketing/imports/{first['id']}/errors?offset=100&limit=50", headers=declared.reader
    ).json()
    assert (page["total"], page["offset"], page["limit"], len(page["data"])) == (500, 100, 50, 50)
    assert page["data"][0] == {"row": 2 + 300, "field": "attributes.age", "message": "must be a number"}
    report = client.get(f"/v1/marketing/imports/{first['id']}/errors.csv", headers=declared.reader)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    lines = report.text.splitlines()
    assert lines[0] == "row,column,message" and len(lines) == 501
    assert lines[1] == "2,attributes.age,must be a number"
    assert "old" not in report.text  # rows are named, never their values
    too_far = client.get(f"/v1/marketing/imports/{first['id']}/errors?limit=5000", headers=declared.reader)
    assert too_far.status_code == 422


def test_a_file_refused_part_way_ends_failed_with_the_reason_in_its_report(
    client: TestClient, declared: Keys
) -> None:
    for body, field in ((b"name\nx\n", "header"), ("email\nz\xfc@x\n".encode("latin-1"), "file")):
        started = client.post(
            "/v1/marketing/contacts/import?background=true",
            content=body,
            headers={**declared.sender, "Content-Type": "text/csv"},
        )
        assert started.status_code == 202, started.text
        done = finished(client, declared, started.json()["id"])
        assert done["status"] == "failed" and done["errors"][0]["field"] == field, done


def test_another_tenant_cannot_read_an_import_or_its_report(
    client: TestClient, declared: Keys, services: Services, other_tenant: TenantFixture
) -> None:
    started = client.post(
        "/v1/marketing/contacts/import?background=true",
        content=b"email,age\r\nx@example.net,old\r\n",
        headers={**declared.sender, "Content-Type": "text/csv"},
    ).json()
    finished(client, declared, started["id"])
    stranger = keys_for(services, other_tenant)
    for path in ("", "/errors", "/errors.csv"):
        got = client.get(f"/v1/marketing/imports/{started['id']}{path}", headers=stranger.reader)
        assert got.status_code == 404, path
