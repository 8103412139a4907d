"""The evidence pack: built by the CLI (and the API), checked offline by `sealmail verify`,
which names each file altered, added or removed and a manifest signed by another key."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from tests.conftest import TenantFixture
from tests.integration.evidence.harness import cli_env
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.errors import InvalidRequest
from sealmail.evidence import signed
from sealmail.evidence.pack import parse_period
from sealmail.intake.api.app import create_api
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.tenancy.decisions import Decisions

pytestmark = [pytest.mark.hipaa("164.316(b)(2)"), pytest.mark.hipaa("164.312(c)(1)")]

runner = CliRunner()
YEAR = str(datetime.now(UTC).year)


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    """Copy the zip, replacing (bytes), dropping (None) or adding members."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            if info.filename in change:
                data = change[info.filename]
                if data is not None:
                    new.writestr(info.filename, data)
            else:
                new.writestr(info.filename, old.read(info.filename))
        for name, data in change.items():
            if name not in old.namelist() and data is not None:
                new.writestr(name, data)


def _verify(path: Path, key: str) -> tuple[int, str]:
    done = runner.invoke(sealmail_cli, ["verify", str(path), "--key", key])
    return done.exit_code, done.output


def test_pack_verifies_and_every_tampering_is_named(
    services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    body = MessageIn.model_validate(
        {
            "from": "results@clinic.example",
            "to": ["ann@example.org"],
            "subject": "R",
            "text": "x",
            "stream": "phi",
        }
    )
    accepted, _ = services.messages.submit(
        tenant.principal, compose.from_message(body, "clinic.example", 1000)
    )
    services.evidence.retention.place_hold(tenant.id, "message", accepted.id, "litigation 17", "officer")
    services.evidence.plain.record(tenant.id, "pat@home.example", "signed form, chart", "officer")
    services.evidence.anchor("test")
    # A protective setting weakened with its reason: the configuration's decisions register.
    services.tenancy.update_settings(tenant.id, {"secureline": {"force_portal": True}}, actor="officer")
    services.tenancy.update_settings(
        tenant.id,
        {"secureline": {"force_portal": False}},
        actor="officer",
        also=Decisions(services.engine).recorder("portal outage, ticket 4417"),
    )

    env = cli_env(services)
    pack = tmp_path / "pack.zip"
    built = runner.invoke(sealmail_cli, ["evidence", "pack", "--period", YEAR, "--out", str(pack)], env=env)
    assert built.exit_code == 0, built.output
    key = signed.key_fingerprint(services.evidence.keys.tenant(tenant.id).public_key())
    code, output = _verify(pack, key)
    assert code == 0 and "files intact" in output, output

    with zipfile.ZipFile(pack) as z:
        names = set(z.namelist())
        assert {
            "manifest.json",
            "README.txt",
            "audit/entries.jsonl",
            "audit/verification.json",
            "anchors/anchors.jsonl",
            "policies/retention.json",
            "policies/tenant-settings.json",
            "registers/legal-holds.json",
            "registers/plain-requests.json",
            "registers/decisions.json",
            "reports/secured.pdf",
            "reports/plain_register.csv",
        } <= names
        assert json.loads(z.read("audit/verification.json"))["ok"] is True
        assert "litigation 17" in z.read("registers/legal-holds.json").decode()
        [decision] = json.loads(z.read("registers/decisions.json"))
        assert decision["setting"] == "secureline.force_portal" and decision["actor"] == "officer"
        assert decision["reason"] == "portal outage, ticket 4417" and decision["after"] is False
        assert json.loads(z.read("policies/tenant-settings.json"))["secureline"]["force_portal"] is False
        assert "signed form, chart" in z.read("reports/plain_register.csv").decode()
        assert accepted.id in z.read("audit/entries.jsonl").decode()
        text = PdfReader(io.BytesIO(z.read("reports/retention.pdf"))).pages[0].extract_text()
        assert "legal_hold" in text and "floor_days" in text
        anchor_line = z.read("anchors/anchors.jsonl").decode().splitlines()[0]
    anchor_file = tmp_path / "anchor.json"
    anchor_file.write_text(anchor_line)
    assert runner.invoke(sealmail_cli, ["verify", str(anchor_file)]).exit_code == 0

    cases = {
        "altered": ({"reports/secured.csv": b"nothing,to,see\r\n"}, "reports/secured.csv: altered"),
        "removed": (
            {"registers/legal-holds.json": None},
            "registers/legal-holds.json: in the manifest but missing",
        ),
        "added": ({"reports/extra.csv": b"a\r\n"}, "reports/extra.csv: in the pack but not in the manifest"),
    }
    for name, (change, expected) in cases.items():
        bad = tmp_path / f"{name}.zip"
        _rewrite(pack, bad, change)
        code, output = _verify(bad, key)
        assert code == 1 and expected in output, (name, output)

    with zipfile.ZipFile(pack) as z:
        manifest = json.loads(z.read("manifest.json"))
    manifest["body"]["files"]["reports/secured.csv"] = "0" * 64
    forged = tmp_path / "forged.zip"
    _rewrite(pack, forged, {"manifest.json": json.dumps(manifest).encode()})
    code, output = _verify(forged, key)
    assert code == 1 and "manifest.json: body.files.reports/secured.csv: altered after signing" in output, (
        output
    )
    manifest["manifest"] = signed.manifest(manifest["body"])  # digests recomputed: the signature breaks
    _rewrite(pack, forged, {"manifest.json": json.dumps(manifest).encode()})
    code, output = _verify(forged, key)
    assert code == 1 and "manifest.json: signature: does not verify" in output, output
    code, output = _verify(pack, "ab" * 32)
    assert code == 1 and "not the trusted key" in output


def test_pack_over_the_api(services: Services, tenant: TenantFixture) -> None:
    _, reader_key = services.tenancy.create_api_key(tenant.id, "reader", ["read"], actor="test")
    with TestClient(create_api(services)) as http:
        admin = {"Authorization": f"Bearer {tenant.api_key}"}
        ok = http.get("/v1/evidence/pack", params={"period": YEAR}, headers=admin)
        assert ok.status_code == 200 and ok.headers["content-type"] == "application/zip"
        pack = zipfile.ZipFile(io.BytesIO(ok.content))
        assert pack.testzip() is None
        controls = pack.read("controls/hipaa-tests.md").decode()
        assert "| 164.312(b) |" in controls and "test_audit_anchors.py::" in controls
        bad = http.get("/v1/evidence/pack", params={"period": "last week"}, headers=admin)
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
        denied = http.get(
            "/v1/evidence/pack", params={"period": YEAR}, headers={"Authorization": f"Bearer {reader_key}"}
        )
        assert denied.status_code == 403


def test_periods() -> None:
    q4 = parse_period("2026-Q4")
    assert (q4.since, q4.until) == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    feb = parse_period("2026-02")
    assert (feb.since.month, feb.until.month) == (2, 3)
    for bad in ("2026-Q5", "2026-13", "Q4", ""):
        with pytest.raises(InvalidRequest):
            parse_period(bad)
