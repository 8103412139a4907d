"""``/v1/suppressions``: list, read, add, remove and CSV export, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.suppressions.conftest import auth

from sealmail.app import Services
from sealmail.store.tables import audit_log

PROBLEM = "application/problem+json"


def add(api: TestClient, t: TenantFixture, address: str, **over: object) -> dict[str, object]:
    resp = api.post("/v1/suppressions", json={"address": address, **over}, headers=auth(t))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_added_entry_is_listed_read_and_audited_without_the_address(
    api: TestClient, tenant: TenantFixture, services: Services
) -> None:
    row = add(api, tenant, "Jane.Doe@Example.NET", stream="broadcast", reason="unsubscribe")
    assert row["address"] == "jane.doe@example.net"  # compared case-insensitively
    assert (row["stream"], row["reason"], row["source"], row["active"]) == (
        "broadcast",
        "unsubscribe",
        "api",
        True,
    )
    page = api.get("/v1/suppressions", headers=auth(tenant)).json()
    assert [r["id"] for r in page["data"]] == [row["id"]]
    assert api.get(f"/v1/suppressions/{row['id']}", headers=auth(tenant)).json() == row
    with services.engine.connect() as conn:
        entry = conn.execute(sa.select(audit_log).where(audit_log.c.action == "suppression:created")).one()
    assert entry.target == row["id"] and entry.tenant_id == tenant.id
    assert "jane" not in str(entry.details).lower()


def test_adding_the_same_entry_again_answers_200_and_changes_nothing(
    api: TestClient, tenant: TenantFixture
) -> None:
    first = add(api, tenant, "jane@example.net")
    again = api.post("/v1/suppressions", json={"address": "JANE@example.net"}, headers=auth(tenant))
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["updated_at"] == first["updated_at"]


def test_filters_and_cursor_pagination(api: TestClient, tenant: TenantFixture) -> None:
    for i in range(5):
        add(api, tenant, f"p{i}@example.net", stream="phi" if i % 2 else "*")
    add(api, tenant, "u@example.net", stream="broadcast", reason="unsubscribe")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/suppressions", params=params, headers=auth(tenant)).json()
        seen += [r["address"] for r in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted([f"p{i}@example.net" for i in range(5)] + ["u@example.net"])
    assert len(seen) == len(set(seen))
    phi = api.get("/v1/suppressions", params={"stream": "phi"}, headers=auth(tenant)).json()["data"]
    assert sorted(r["address"] for r in phi) == ["p1@example.net", "p3@example.net"]
    unsub = api.get("/v1/suppressions", params={"reason": "unsubscribe"}, headers=auth(tenant)).json()
    assert [r["address"] for r in unsub["data"]] == ["u@example.net"]
    one = api.get("/v1/suppressions", params={"address": "P2@Example.net"}, headers=auth(tenant)).json()
    assert [r["address"] for r in one["data"]] == ["p2@example.net"]


def test_remove_takes_stream_and_address_and_is_404_when_absent(
    api: TestClient, tenant: TenantFixture, services: Services
) -> None:
    add(api, tenant, "jane+tag@example.net")
    add(api, tenant, "jane+tag@example.net", stream="phi")
    gone = api.delete(
        "/v1/suppressions", params={"address": "jane+tag@example.net", "stream": "*"}, headers=auth(tenant)
    )
    assert gone.status_code == 204
    left = api.get("/v1/suppressions", headers=auth(tenant)).json()["data"]
    assert [(r["address"], r["stream"]) for r in left] == [("jane+tag@example.net", "phi")]
    again = api.delete("/v1/suppressions", params={"address": "jane+tag@example.net"}, headers=auth(tenant))
    assert again.status_code == 404
    assert again.headers["content-type"] == PROBLEM
    with services.engine.connect() as conn:
        removed = conn.execute(
            sa.select(sa.func.count())
            .select_from(audit_log)
            .where(audit_log.c.action == "suppression:removed")
        ).scalar_one()
    assert removed == 1


def test_export_streams_csv_with_formula_cells_neutralised(api: TestClient, tenant: TenantFixture) -> None:
    later = datetime.now(UTC) + timedelta(days=3)
    add(api, tenant, "a@example.net", expires_at=later.isoformat())
    add(api, tenant, "=cmd@example.net", stream="broadcast")
    resp = api.get("/v1/suppressions/export.csv", headers=auth(tenant))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    by_address = {r["address"]: r for r in rows}
    assert set(by_address) == {"a@example.net", "'=cmd@example.net"}
    assert datetime.fromisoformat(by_address["a@example.net"]["expires_at"]) == later
    assert by_address["'=cmd@example.net"]["stream"] == "broadcast"
    only = api.get("/v1/suppressions/export.csv", params={"stream": "broadcast"}, headers=auth(tenant))
    assert len(list(csv.DictReader(io.StringIO(only.text)))) == 1


def test_export_pages_through_more_entries_than_one_read(services: Services, tenant: TenantFixture) -> None:
    from sealmail.suppressions.service import Suppressions

    store = Suppressions(services.engine)
    for i in range(7):
        store.add(tenant.id, address=f"x{i}@example.net", actor="test", source="test")
    lines = list(store.export_csv(tenant.id, page=3))
    assert lines[0].startswith("address,stream,reason")
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(f"x{i}@example.net" for i in range(7))


def test_another_tenants_entries_are_invisible(
    api: TestClient, tenant: TenantFixture, services: Services
) -> None:
    row = add(api, tenant, "jane@example.net")
    other = make_tenant(services, "Other", "other.example")
    assert api.get(f"/v1/suppressions/{row['id']}", headers=auth(other)).status_code == 404
    assert api.get("/v1/suppressions", headers=auth(other)).json()["data"] == []
    export = api.get("/v1/suppressions/export.csv", headers=auth(other)).text
    assert "jane" not in export
    gone = api.delete("/v1/suppressions", params={"address": "jane@example.net"}, headers=auth(other))
    assert gone.status_code == 404
    assert api.get(f"/v1/suppressions/{row['id']}", headers=auth(tenant)).status_code == 200


def test_bad_input_is_a_422_problem_and_stores_nothing(api: TestClient, tenant: TenantFixture) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases = [
        ({"address": "not-an-address"}, "address"),
        ({"address": "Jane <jane@example.net>"}, "address"),
        ({"address": "jane@example.net", "stream": "marketing"}, "stream"),
        ({"address": "jane@example.net", "reason": "hard_bounce"}, "reason"),
        ({"address": "jane@example.net", "expires_at": past}, "expires_at"),
        ({"address": "jane@example.net", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"address": "jane@example.net", "extra": 1}, "extra"),
    ]
    for body, field in cases:
        resp = api.post("/v1/suppressions", json=body, headers=auth(tenant))
        assert resp.status_code == 422, (body, resp.text)
        assert resp.headers["content-type"] == PROBLEM
        assert field in {e["field"] for e in resp.json()["errors"]}, (body, resp.json())
    bad_filter = api.get("/v1/suppressions", params={"stream": "marketing"}, headers=auth(tenant))
    assert bad_filter.status_code == 422
    assert api.get("/v1/suppressions", headers=auth(tenant)).json()["data"] == []


def test_changes_need_the_admin_scope_and_reading_needs_read(
    api: TestClient, tenant: TenantFixture, services: Services
) -> None:
    _, reader = services.tenancy.create_api_key(tenant.id, "reader", ["read"], actor="test")
    _, sender = services.tenancy.create_api_key(tenant.id, "sender", ["send"], actor="test")
    as_reader = {"Authorization": f"Bearer {reader}"}
    as_sender = {"Authorization": f"Bearer {sender}"}
    assert api.get("/v1/suppressions", headers=as_reader).status_code == 200
    assert api.get("/v1/suppressions", headers=as_sender).status_code == 403
    denied = api.post("/v1/suppressions", json={"address": "j@example.net"}, headers=as_reader)
    assert denied.status_code == 403 and denied.headers["content-type"] == PROBLEM
    deleted = api.delete("/v1/suppressions", params={"address": "j@example.net"}, headers=as_reader)
    assert deleted.status_code == 403
