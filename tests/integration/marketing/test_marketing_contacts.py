"""Contacts over the API and the CLI, on SQLite and PostgreSQL: typed attributes with PHI
classes, sensitive values sealed, streamed CSV import with a per-row report, exports that
leave out what the key may not see, tenant isolation."""

import csv
import io
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys, bearer
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings
from sealmail.marketing.contacts import PG_EXISTING
from sealmail.marketing.imports import csv_rows
from sealmail.marketing.tables import mkt_contacts
from sealmail.store.tables import audit_log

runner = CliRunner()
PATIENT = {
    "email": "Pat.Doe@Example.NET",
    "phone": "+1 415 555 0123",
    "tz": "America/Chicago",
    "attributes": {"city": "Austin", "age": "52", "diagnosis": "T2 diabetes", "hiv_status": "positive"},
}


def test_a_contact_is_upserted_by_email_with_typed_values_and_the_sensitive_one_sealed(
    client: TestClient, declared: Keys, services: Services
) -> None:
    first = client.post("/v1/marketing/contacts", json=PATIENT, headers=declared.admin)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["email"] == "pat.doe@example.net" and body["phone"] == "+14155550123"
    assert body["attributes"] == {
        "age": 52,
        "city": "Austin",
        "diagnosis": "T2 diabetes",
        "hiv_status": "positive",
    }
    again = client.post(
        "/v1/marketing/contacts",
        json={"email": "pat.doe@example.net", "attributes": {"age": 53, "smoker": "no"}},
        headers=declared.admin,
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == body["id"]
    assert again.json()["attributes"]["age"] == 53 and again.json()["attributes"]["smoker"] is False
    assert again.json()["attributes"]["hiv_status"] == "positive"  # kept through the reseal
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(mkt_contacts)).one()
    stored = repr(tuple(row))
    assert "positive" not in stored and b"positive" not in row.sealed
    assert "hiv_status" not in row.attrs and set(row.blind) == {"hiv_status"}


def test_a_read_key_sees_neither_clinical_nor_sensitive_attributes(
    client: TestClient, declared: Keys
) -> None:
    cid = client.post("/v1/marketing/contacts", json=PATIENT, headers=declared.admin).json()["id"]
    seen = client.get(f"/v1/marketing/contacts/{cid}", headers=declared.reader)
    assert seen.status_code == 200
    assert seen.json()["attributes"] == {"age": 52, "city": "Austin"}
    listed = client.get("/v1/marketing/contacts", headers=declared.reader).json()["data"]
    assert listed[0]["attributes"] == {"age": 52, "city": "Austin"}


def test_bad_contacts_are_422_problems_naming_each_field_and_nothing_is_stored(
    client: TestClient, declared: Keys, services: Services
) -> None:
    r = client.post(
        "/v1/marketing/contacts",
        json={
            "email": "not-an-address",
            "phone": "+1 555",
            "tz": "Mars/Olympus",
            "attributes": {"age": "old", "plan": "platinum", "nope": 1},
        },
        headers=declared.admin,
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"email", "phone", "tz", "attributes.age", "attributes.plan", "attributes.nope"}
    assert "old" not in r.text and "platinum" not in r.text  # values are never echoed
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mkt_contacts)).scalar() == 0


def test_attribute_declarations_are_validated_and_final(client: TestClient, declared: Keys) -> None:
    again = client.post(
        "/v1/marketing/attributes",
        json={"name": "city", "type": "number", "phi_class": "none"},
        headers=declared.admin,
    )
    assert again.status_code == 409
    bad = client.post(
        "/v1/marketing/attributes",
        json={"name": "Email", "type": "choice", "phi_class": "none"},
        headers=declared.admin,
    )
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"name", "choices"}
    assert (
        client.post(
            "/v1/marketing/attributes",
            json={"name": "x", "type": "text", "phi_class": "none"},
            headers=declared.sender,
        ).status_code
        == 403
    )


CSV = (
    "email,phone,tz,city,age,hiv_status\r\n"
    "a@example.net,+442071838750,Europe/London,London,40,negative\r\n"
    "bad-address,,,,,\r\n"
    "b@example.net,,Nowhere/Zone,Paris,x,\r\n"
    "c@example.net,,,=HYPERLINK(1),30,\r\n"
    "A@example.net,,,Leeds,,\r\n"
)


def test_csv_import_upserts_reports_bad_rows_and_keeps_the_good_ones(
    client: TestClient, declared: Keys
) -> None:
    r = client.post(
        "/v1/marketing/contacts/import",
        content=CSV.encode(),
        headers={**declared.sender, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows"], report["created"], report["updated"], report["failed"]) == (5, 2, 0, 2)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (3, "email"),
        (4, "tz"),
        (4, "attributes.age"),
    ]
    assert report == client.get(f"/v1/marketing/imports/{report['id']}", headers=declared.reader).json()
    # The later row for a@ (upper-cased) updated the earlier one; the CSV export guards formulas.
    export = client.get("/v1/marketing/contacts/export.csv", headers=declared.admin)
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(export.text))}
    assert rows["a@example.net"]["city"] == "Leeds" and rows["a@example.net"]["hiv_status"] == "negative"
    assert rows["c@example.net"]["city"] == "'=HYPERLINK(1)"
    # A read key's export has no clinical or sensitive column at all.
    narrow = client.get("/v1/marketing/contacts/export.csv", headers=declared.reader)
    header = next(csv.reader(io.StringIO(narrow.text)))
    assert header == ["email", "phone", "tz", "status", "age", "city", "plan", "smoker"]


def test_a_second_import_updates_and_a_json_batch_imports_the_same_way(
    client: TestClient, declared: Keys
) -> None:
    client.post(
        "/v1/marketing/contacts/import",
        content=CSV.encode(),
        headers={**declared.sender, "Content-Type": "text/csv"},
    )
    batch = client.post(
        "/v1/marketing/contacts/batch",
        json={
            "contacts": [{"email": "a@example.net", "attributes": {"age": 41}}, {"email": "d@example.net"}]
        },
        headers=declared.sender,
    )
    assert batch.status_code == 200, batch.text
    assert (batch.json()["created"], batch.json()["updated"], batch.json()["failed"]) == (1, 1, 0)


def test_unusable_uploads_are_refused_with_problems(client: TestClient, declared: Keys) -> None:
    h = declared.sender
    wrong_type = client.post(
        "/v1/marketing/contacts/import", content=b"email\n", headers={**h, "Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415
    no_email = client.post(
        "/v1/marketing/contacts/import", content=b"name\nx\n", headers={**h, "Content-Type": "text/csv"}
    )
    assert no_email.status_code == 422 and no_email.json()["errors"][0]["field"] == "header"
    latin1 = client.post(
        "/v1/marketing/contacts/import",
        content="email,city\nz@example.net,Z\xfcrich\n".encode("latin-1"),
        headers={**h, "Content-Type": "text/csv"},
    )
    assert latin1.status_code == 422 and "UTF-8" in latin1.text
    huge_cell = client.post(
        "/v1/marketing/contacts/import",
        content=b'email,city\nq@example.net,"' + b"x" * 5000 + b'"\n',
        headers={**h, "Content-Type": "text/csv"},
    )
    assert huge_cell.status_code == 422 and "malformed CSV" in huge_cell.text


def test_another_tenant_never_sees_a_contact(
    client: TestClient, declared: Keys, other_tenant: TenantFixture
) -> None:
    cid = client.post("/v1/marketing/contacts", json=PATIENT, headers=declared.admin).json()["id"]
    other = bearer(other_tenant.api_key)
    assert client.get(f"/v1/marketing/contacts/{cid}", headers=other).status_code == 404
    assert client.get("/v1/marketing/contacts", headers=other).json()["data"] == []
    consent = client.post(
        f"/v1/marketing/contacts/{cid}/consent",
        json={"purpose": "marketing", "action": "grant"},
        headers=other,
    )
    assert consent.status_code == 404


def test_cli_imports_with_a_progress_bar_and_exports_0600(
    settings: Settings, services: Services, declared: Keys, tenant: TenantFixture, tmp_path: Path
) -> None:
    env = {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}
    source = tmp_path / "contacts.csv"
    source.write_text(
        "email,city,age\n" + "".join(f"p{i}@example.net,Austin,{20 + i}\n" for i in range(2500)) + "oops,,\n"
    )
    imported = runner.invoke(sealmail_cli, ["marketing", "import", str(source)], env=env)
    assert imported.exit_code == 1, imported.output  # one row failed
    assert "2501 rows: 2500 created, 0 updated, 1 failed" in imported.output
    assert "row 2502: email" in imported.output and "importing" in imported.output
    target = tmp_path / "out.csv"
    exported = runner.invoke(sealmail_cli, ["marketing", "export", "-o", str(target)], env=env)
    assert exported.exit_code == 0, exported.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert len(target.read_text().splitlines()) == 2501
    with services.engine.connect() as conn:
        actions = [
            a for (a,) in conn.execute(sa.select(audit_log.c.action).where(audit_log.c.action.like("mkt_%")))
        ]
    assert "mkt_contacts:imported" in actions and "mkt_contacts:exported" in actions
    bad = runner.invoke(
        sealmail_cli,
        ["marketing", "consent", "nobody@example.net", "--purpose", "marketing", "--action", "grant"],
        env=env,
    )
    assert bad.exit_code == 2


def test_imported_values_with_copy_control_characters_come_back_exactly(
    client: TestClient, declared: Keys
) -> None:
    """PostgreSQL imports write COPY text by hand: a tab, newline, backslash or a literal
    ``\\N`` in a value must be stored as given, not split a row or become NULL."""
    hostile = {
        "a@example.net": "tab\there",
        "b@example.net": "two\nlines\r\nand a return",
        "c@example.net": "\\N",
        "d@example.net": 'C:\\path\\to\\x00 "quoted"',
        "e@example.net": "Zürich ☃ \u2028 end",
    }
    lines = io.StringIO()
    out = csv.writer(lines)
    out.writerow(["email", "city", "diagnosis", "hiv_status"])
    for email, value in hostile.items():
        out.writerow([email, value, value, "positive" if email < "c" else ""])
    r = client.post(
        "/v1/marketing/contacts/import",
        content=lines.getvalue().encode(),
        headers={**declared.admin, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["failed"]) == (5, 0)
    page = client.get("/v1/marketing/contacts", headers=declared.admin).json()["data"]
    got = {c["email"]: c["attributes"] for c in page}
    for email, value in hostile.items():
        expected = {"city": value.strip(), "diagnosis": value.strip()}
        if email < "c":
            expected["hiv_status"] = "positive"
        assert got[email] == expected, email


def test_an_update_merges_over_the_stored_contact_exactly_as_given(
    client: TestClient, declared: Keys, services: Services
) -> None:
    """The update side of the upsert (merged by the server on PostgreSQL): a given phone,
    zone, status or attribute replaces the stored one, a null removes an attribute, what is
    not given is kept, a sealed value survives an update that does not name it and is
    re-sealed by one that does; values with JSON and COPY specials come back exactly."""
    tricky = 'tab\there "quoted" C:\\x \\N ☃'
    first = client.post(
        "/v1/marketing/contacts/batch",
        json={
            "contacts": [
                {
                    "email": "a@example.net",
                    "phone": "+14155550123",
                    "tz": "America/Chicago",
                    "attributes": {"city": "Austin", "age": 30, "hiv_status": "positive"},
                },
                {"email": "b@example.net", "attributes": {"city": "Leeds", "smoker": True}},
            ]
        },
        headers=declared.admin,
    )
    assert (first.json()["created"], first.json()["failed"]) == (2, 0), first.text
    with services.engine.connect() as conn:
        before = {r.email: r for r in conn.execute(sa.select(mkt_contacts))}
    again = client.post(
        "/v1/marketing/contacts/batch",
        json={
            "contacts": [
                {
                    "email": "A@Example.net",
                    "status": "unsubscribed",
                    "attributes": {"city": None, "age": 31, "diagnosis": tricky},
                },
                {"email": "b@example.net", "tz": "Europe/Paris", "attributes": {"hiv_status": "negative"}},
            ]
        },
        headers=declared.admin,
    )
    assert (again.json()["created"], again.json()["updated"], again.json()["failed"]) == (0, 2, 0), again.text
    page = client.get("/v1/marketing/contacts", headers=declared.admin).json()["data"]
    got = {c["email"]: c for c in page}
    a, b = got["a@example.net"], got["b@example.net"]
    assert (a["phone"], a["tz"], a["status"]) == ("+14155550123", "America/Chicago", "unsubscribed")
    assert a["attributes"] == {"age": 31, "diagnosis": tricky.strip(), "hiv_status": "positive"}
    assert (b["phone"], b["tz"], b["status"]) == (None, "Europe/Paris", "active")
    assert b["attributes"] == {"city": "Leeds", "smoker": True, "hiv_status": "negative"}
    with services.engine.connect() as conn:
        after = {r.email: r for r in conn.execute(sa.select(mkt_contacts))}
    # a's sealed value was not named: the same ciphertext and token; b's was sealed anew.
    assert after["a@example.net"].sealed == before["a@example.net"].sealed
    assert after["a@example.net"].blind == before["a@example.net"].blind
    assert before["b@example.net"].sealed is None and after["b@example.net"].sealed is not None
    assert b"negative" not in after["b@example.net"].sealed and set(after["b@example.net"].blind) == {
        "hiv_status"
    }
    assert all(after[e].updated_at > before[e].updated_at for e in after)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_upsert_lookup_probes_the_unique_index_even_before_statistics_exist(
    services: Services, tenant: TenantFixture
) -> None:
    """A first import grows the table faster than autovacuum analyzes it; the lookup of
    existing contacts must stay one unique-key probe per email, never a walk of the
    tenant's rows (which made a 1 M import slow down to 800 rows/s)."""
    lines = ["email,tz"] + [f"p{i}@example.net,UTC" for i in range(5000)]
    report = services.marketing.importer.run(tenant.id, csv_rows(iter(lines)), actor="test")
    assert report["created"] == 5000
    emails = [f"p{i}@example.net" for i in range(0, 5000, 5)] + [f"new{i}@example.net" for i in range(1000)]
    with services.engine.connect() as conn:
        (plan,) = conn.execute(
            sa.text(f"EXPLAIN (FORMAT JSON) {PG_EXISTING.text}"), {"t": tenant.id, "emails": emails}
        ).one()
        found = conn.execute(PG_EXISTING, {"t": tenant.id, "emails": emails}).all()
    scans = [
        (n["Node Type"], n.get("Index Name")) for n in _plan_nodes(plan[0]["Plan"]) if n.get("Relation Name")
    ]
    assert scans == [("Index Scan", "uq_mkt_contacts_tenant_email")], scans
    assert sorted(r.email for r in found) == sorted(emails[:1000])


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_an_export_imports_back_as_it_was(client: TestClient, declared: Keys) -> None:
    """The export protects cells a spreadsheet would run (a phone's ``+``, a negative number,
    text starting ``=``, ``-`` or ``@``) with an apostrophe; importing that export must give
    back the same contacts, not a row error on every phone and negative number."""
    given = [
        {"email": "a@example.net", "phone": "+14155550123", "attributes": {"age": -3, "city": "=1+1"}},
        {"email": "b@example.net", "attributes": {"city": "@home", "plan": "gold"}},
        {"email": "c@example.net", "attributes": {"city": "O'Brien's -town", "smoker": True}},
    ]
    r = client.post("/v1/marketing/contacts/batch", json={"contacts": given}, headers=declared.sender)
    assert r.status_code == 200 and r.json()["failed"] == 0, r.text
    before = client.get("/v1/marketing/contacts", headers=declared.admin).json()["data"]
    export = client.get("/v1/marketing/contacts/export.csv", headers=declared.admin).text
    cells = {row["email"]: row for row in csv.DictReader(io.StringIO(export))}
    assert cells["a@example.net"]["phone"] == "'+14155550123"  # still protected in the file
    assert cells["a@example.net"]["city"] == "'=1+1" and cells["b@example.net"]["city"] == "'@home"
    back = client.post(
        "/v1/marketing/contacts/import",
        content=export.encode(),
        headers={**declared.sender, "Content-Type": "text/csv"},
    )
    assert back.status_code == 200, back.text
    report = back.json()
    assert (report["updated"], report["failed"], report["errors"]) == (3, 0, []), report
    after = client.get("/v1/marketing/contacts", headers=declared.admin).json()["data"]
    fields = ("email", "phone", "tz", "status", "attributes")
    assert [{k: c[k] for k in fields} for c in after] == [{k: c[k] for k in fields} for c in before]
