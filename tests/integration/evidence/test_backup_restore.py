"""Backup, restore and the timed drill (164.308(a)(7)) on both engines: content stays
ciphertext in the backup, the restored chain is re-verified, tampering is refused, and the
drill's recovery point and time land in the audit log (and from there in the evidence pack)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import UTC
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, _pg_admin_url, make_settings
from typer.testing import CliRunner

from sealmail.app import Services, build_services
from sealmail.cli import app
from sealmail.config import Settings
from sealmail.intake.api.app import create_api
from sealmail.marketing.imports import csv_rows
from sealmail.store import db
from sealmail.store.tables import audit_log

pytestmark = [pytest.mark.hipaa("164.308(a)(7)(ii)(A)"), pytest.mark.hipaa("164.312(b)")]

runner = CliRunner()
SECRET = "Biopsy result XYZZY-BACKUP-7"


def _env(settings: Settings, url: str, home: Path | None = None) -> dict[str, str]:
    return {
        "SEALMAIL_HOME": str(home or settings.home),
        "SEALMAIL_DATABASE_URL": url,
        "SEALMAIL_MASTER_KEY_FILE": str(settings.resolved_master_key_file),
    }


def _send(services: Services, tenant: TenantFixture) -> str:
    with TestClient(create_api(services)) as http:
        resp = http.post(
            "/v1/messages",
            json={
                "from": f"noreply@{tenant.domain}",
                "to": ["pat@example.net"],
                "subject": SECRET,
                "text": SECRET,
            },
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _backup(settings: Settings, path: Path) -> None:
    made = runner.invoke(
        app, ["backup", "create", "--out", str(path)], env=_env(settings, settings.resolved_database_url)
    )
    assert made.exit_code == 0, made.output


def test_backup_keeps_content_encrypted_and_restore_reverifies_the_chain(
    services: Services, tenant: TenantFixture, settings: Settings, scratch_url: str, tmp_path: Path
) -> None:
    message_id = _send(services, tenant)
    chunk = settings.home / "blobs" / "fsh_1" / "0"  # the blob store's files are copied as they are
    chunk.parent.mkdir(parents=True, exist_ok=True)
    chunk.write_bytes(b"\x00ciphertext chunk")
    path = tmp_path / "backup.zip"
    _backup(settings, path)
    assert path.stat().st_mode & 0o077 == 0
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("backup.json"))
        members = {n: archive.read(n) for n in archive.namelist()}
    assert manifest["tables"]["messages"] == 1 and manifest["audit_head"]["seq"] >= 1
    for name, data in members.items():
        assert b"XYZZY-BACKUP" not in data, f"plaintext content in {name}"

    home = tmp_path / "restored"
    home.mkdir()
    restored = runner.invoke(app, ["restore", str(path)], env=_env(settings, scratch_url, home))
    assert restored.exit_code == 0, restored.output
    assert "audit chain verified after restore" in restored.output
    assert (home / "blobs" / "fsh_1" / "0").read_bytes() == b"\x00ciphertext chunk"
    again = runner.invoke(app, ["restore", str(path)], env=_env(settings, scratch_url, home))
    assert again.exit_code == 2 and "empty database" in again.output

    # The restored database opens with the same key ring: content decrypts as it was.
    copy = build_services(make_settings(home, scratch_url, master_key_file=settings.resolved_master_key_file))
    try:
        with TestClient(create_api(copy)) as http:
            got = http.get(
                f"/v1/messages/{message_id}/content", headers={"Authorization": f"Bearer {tenant.api_key}"}
            )
        assert got.status_code == 200 and got.json()["subject"] == SECRET
        with copy.engine.connect() as conn:
            actions = list(conn.execute(sa.select(audit_log.c.action).order_by(audit_log.c.seq)).scalars())
        assert actions[-2:] == ["backup:restored", "message:content_read"]
    finally:
        copy.close()


def _rewrite(path: Path, member: str, edit: bool, fix_manifest: bool) -> Path:
    """A copy of the backup with the first audit row's actor changed (and the manifest's hash
    recomputed when ``fix_manifest``: a careful forger)."""
    import hashlib

    out = path.with_name(f"forged-{fix_manifest}.zip")
    with zipfile.ZipFile(path) as src:
        members = {n: src.read(n) for n in src.namelist()}
    lines = members[member].splitlines()
    row = json.loads(lines[0])
    cols = json.loads(members["backup.json"])["columns"]["audit_log"]
    row[cols.index("actor")] = "forger" if edit else row[cols.index("actor")]
    members[member] = b"\n".join([json.dumps(row).encode(), *lines[1:]]) + b"\n"
    if fix_manifest:
        manifest = json.loads(members["backup.json"])
        manifest["members"][member] = hashlib.sha256(members[member]).hexdigest()
        members["backup.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    out.write_bytes(buf.getvalue())
    return out


def test_an_altered_backup_is_refused_or_fails_the_chain(
    services: Services, tenant: TenantFixture, settings: Settings, scratch_url: str, tmp_path: Path
) -> None:
    _send(services, tenant)
    path = tmp_path / "backup.zip"
    _backup(settings, path)
    env = _env(settings, scratch_url, tmp_path)

    altered = runner.invoke(
        app, ["restore", str(_rewrite(path, "tables/audit_log.jsonl", True, False))], env=env
    )
    assert altered.exit_code == 2 and "backup altered: tables/audit_log.jsonl" in altered.output

    # The manifest hash fixed too: it loads, but the re-verified chain names the edited entry.
    forged = runner.invoke(
        app, ["restore", str(_rewrite(path, "tables/audit_log.jsonl", True, True))], env=env
    )
    assert forged.exit_code == 1, forged.output
    assert "entry 1 was edited" in forged.output


def test_drill_reports_recovery_point_and_time(
    services: Services, tenant: TenantFixture, settings: Settings, scratch_url: str, tmp_path: Path
) -> None:
    _send(services, tenant)
    # A consent event: the scratch copy's append-only ledger must still be emptied after.
    services.marketing.importer.run(tenant.id, csv_rows(iter(["email", "pat@example.net"])), actor="t")
    cid = services.marketing.contacts.find(tenant.id, "pat@example.net")
    assert cid is not None
    services.marketing.consent.change(
        tenant.id, cid, purpose="fundraising", channel="email", action="grant", source="api", actor="test"
    )
    with services.engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(audit_log.c.at))).scalar_one()
    report_path = tmp_path / "drill.json"
    env = _env(settings, settings.resolved_database_url)
    ran = runner.invoke(
        app, ["backup", "drill", "--scratch-url", scratch_url, "--out", str(report_path)], env=env
    )
    assert ran.exit_code == 0, ran.output
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["audit_head_matches"]
    assert report["recovery_point"] == last.astimezone(UTC).isoformat()
    assert 0 < report["recovery_time_seconds"] < 120
    assert report["audit_entries_verified"] >= 2 and report["rows"] > 0
    assert report["scratch_engine"] == services.engine.dialect.name
    # The scratch database is left empty, so the next drill can use it again.
    again = runner.invoke(app, ["backup", "drill", "--scratch-url", scratch_url], env=env)
    assert again.exit_code == 0, again.output
    with services.engine.connect() as conn:
        drills = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "backup:drill")
        ).all()
    assert len(drills) == 2 and drills[0].details["recovery_time_seconds"] > 0


# One direction is enough: the SQLite database (``db_url`` narrowed to it) restores into PostgreSQL.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sqlite_backup_restores_into_postgresql(
    services: Services,
    tenant: TenantFixture,
    settings: Settings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    assert settings.resolved_database_url.startswith("sqlite")
    if request.getfixturevalue("pg_database") is None:
        pytest.skip("PostgreSQL not reachable")
    _send(services, tenant)
    path = tmp_path / "backup.zip"
    _backup(settings, path)
    admin = sa.create_engine(db.normalize_url(_pg_admin_url()), isolation_level="AUTOCOMMIT")
    name = f"sealmail_cross_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = _pg_admin_url().rsplit("/", 1)[0] + "/" + name
        restored = runner.invoke(app, ["restore", str(path)], env=_env(settings, url, tmp_path))
        assert restored.exit_code == 0, restored.output
        assert "audit chain verified after restore" in restored.output
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_blob_member_escaping_the_directory_is_refused(
    services: Services, tenant: TenantFixture, settings: Settings, scratch_url: str, tmp_path: Path
) -> None:
    import hashlib

    path = tmp_path / "backup.zip"
    _backup(settings, path)
    with zipfile.ZipFile(path) as src:
        members = {n: src.read(n) for n in src.namelist()}
    manifest = json.loads(members["backup.json"])
    manifest["members"]["blobs/../../escape"] = hashlib.sha256(b"x").hexdigest()
    members["backup.json"] = json.dumps(manifest).encode()
    members["blobs/../../escape"] = b"x"
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    home = tmp_path / "h"
    home.mkdir()
    done = runner.invoke(app, ["restore", str(hostile)], env=_env(settings, scratch_url, home))
    assert done.exit_code == 2 and "escapes the blob directory" in done.output
    assert not (tmp_path / "escape").exists()
    # Refused before anything was loaded: the database is still empty, a clean restore works.
    clean = runner.invoke(app, ["restore", str(path)], env=_env(settings, scratch_url, home))
    assert clean.exit_code == 0, clean.output
