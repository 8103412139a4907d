"""The audit export over real HTTP on SQLite and PostgreSQL: CSV and the signed JSON that
``sealmail audit verify FILE`` checks offline, naming an altered field, a re-signed
document and an entry that no longer matches its chain hash."""

import csv
import io
import json
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import Console, person
from typer.testing import CliRunner

from sealmail.app import Services, build_evidence
from sealmail.cli import app as sealmail_cli
from sealmail.evidence import signed
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role

runner = CliRunner()


def verify(path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(sealmail_cli, ["audit", "verify", str(path), *args])
    return result.exit_code, result.output


def test_csv_and_signed_exports_verify_offline_and_name_what_was_changed(
    console: Console, services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    other = make_tenant(services, "Other", "other.example")
    services.tenancy.update_settings(tenant.id, {"console_idle_minutes": 20}, actor="=HYPERLINK(1)")
    co = person(console, tenant.id, "co@clinic.example", Role.COMPLIANCE)
    got = co.http.get("/console/audit/export.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0] == ["seq", "at", "actor", "action", "target", "details", "hash"]
    assert "'=HYPERLINK(1)" in [r[2] for r in rows[1:]]  # a formula is defused
    assert other.id not in got.text
    filtered = co.http.get("/console/audit/export.csv", params={"action": "user:enrolled"}).text
    assert {r[3] for r in list(csv.reader(io.StringIO(filtered)))[1:]} == {"user:enrolled"}

    doc = co.http.get("/console/audit/export.json").json()
    assert doc["format"] == "sealmail.audit-export.v1" and doc["body"]["tenant_id"] == tenant.id
    entries = doc["body"]["entries"]
    last = max(e["seq"] for e in entries.values())
    with services.engine.connect() as conn:
        mine = (
            conn.execute(
                sa.select(audit_log.c.seq).where(audit_log.c.tenant_id == tenant.id, audit_log.c.seq <= last)
            )
            .scalars()
            .all()
        )
    # Every entry of this tenant up to the export, and no other tenant's.
    assert sorted(e["seq"] for e in entries.values()) == sorted(mine) and doc["body"]["count"] == len(mine)
    key = signed.key_fingerprint(build_evidence(services).keys.tenant(tenant.id).public_key())
    path = tmp_path / "audit.json"
    path.write_text(json.dumps(doc))
    code, output = verify(path, "--key", key)
    assert code == 0 and f"signed by key {key}" in output, output

    first = sorted(doc["body"]["entries"])[0]
    edited = json.loads(json.dumps(doc))
    edited["body"]["entries"][first]["actor"] = "someone-else"
    path.write_text(json.dumps(edited))
    code, output = verify(path)
    assert code == 1 and f"body.entries.{first}.actor: altered after signing" in output, output
    # Re-signed by whoever edited it: intact signature, but not the tenant's key, and the
    # entry no longer matches its chain hash.
    resigned = signed.sign(doc["format"], edited["body"], Ed25519PrivateKey.generate())
    path.write_text(json.dumps(resigned))
    code, output = verify(path, "--key", key)
    assert code == 1 and "not the trusted key" in output and f"body.entries.{first}: does not match" in output
    path.write_text("{not json")
    assert verify(path)[0] == 1
    with services.engine.connect() as conn:
        exported = (
            conn.execute(sa.select(audit_log.c.details).where(audit_log.c.action == "audit:exported"))
            .scalars()
            .all()
        )
    assert [d["format"] for d in exported] == ["csv", "csv", "json"]
    support = person(console, tenant.id, "help@clinic.example", Role.SUPPORT)
    assert support.http.get("/console/audit/export.json").status_code == 403
    assert support.http.get("/console/audit/export.csv").status_code == 403
