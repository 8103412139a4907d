"""The evidence pack's software evidence: a CycloneDX SBOM, an offline dependency audit that
never claims a vulnerability check it did not run, the test results behind the HIPAA table,
and the restore drills; `sealmail verify` refuses a signed pack missing or faking any of them."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.evidence.harness import cli_env
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.evidence import drill, signed, supply
from sealmail.evidence.pack_verify import FORMAT
from sealmail.intake.api.app import create_api
from sealmail.schema import metadata as schema

pytestmark = [pytest.mark.hipaa("164.316(b)(2)"), pytest.mark.hipaa("164.312(c)(1)")]

runner = CliRunner()
YEAR = str(datetime.now(UTC).year)
PASSED = "tests/integration/evidence/test_audit_anchors.py::test_a_forged_anchor_does_not_verify[sqlite]"


def _results(tmp_path: Path) -> Path:
    tests = {PASSED: {"outcome": "passed", "sections": ["164.312(b)"]}}
    for i, section in enumerate(supply.controls.SECTIONS):
        if section != "164.524(c)(2)":
            tests[f"tests/t.py::test_{i}"] = {"outcome": "passed", "sections": [section]}
    tests["tests/t.py::test_plain"] = {"outcome": "failed", "sections": ["164.524(c)(2)"]}
    path = tmp_path / "results.json"
    path.write_text(
        json.dumps({"format": supply.RESULTS_FORMAT, "run": True, "finished_at": "x", "tests": tests})
    )
    return path


def _resign(
    services: Services, tenant_id: str, src: Path, dst: Path, change: dict[str, bytes | None]
) -> None:
    """A pack re-signed with the tenant's own key after ``change``: only content checks catch it."""
    with zipfile.ZipFile(src) as old:
        files = {n: old.read(n) for n in old.namelist() if n != "manifest.json"}
        body = json.loads(old.read("manifest.json"))["body"]
    for name, data in change.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    body["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items())}
    doc = signed.sign(FORMAT, body, services.evidence.keys.tenant(tenant_id))
    with zipfile.ZipFile(dst, "w") as new:
        for name, data in files.items():
            new.writestr(name, data)
        new.writestr("manifest.json", json.dumps(doc))


def test_pack_carries_sbom_audit_results_and_drills(
    services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    drill.run(services.engine, schema.sorted_tables, None)
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"fastapi=={metadata.version('fastapi')}\nnot-a-real-package==1.0\nsqlalchemy==0.0.1\n")
    pack = tmp_path / "pack.zip"
    args = ["evidence", "pack", "--period", YEAR, "--out", str(pack)]
    built = runner.invoke(
        sealmail_cli,
        [*args, "--test-results", str(_results(tmp_path)), "--lock", str(lock)],
        env=cli_env(services),
    )
    assert built.exit_code == 0, built.output
    key = signed.key_fingerprint(services.evidence.keys.tenant(tenant.id).public_key())
    assert runner.invoke(sealmail_cli, ["verify", str(pack), "--key", key]).exit_code == 0

    with zipfile.ZipFile(pack) as z:
        sbom = json.loads(z.read("controls/sbom.cdx.json"))
        audit = json.loads(z.read("controls/dependency-audit.json"))
        table = z.read("controls/hipaa-tests.md").decode()
        drills = json.loads(z.read("registers/backup-drills.json"))
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    purls = {c["purl"] for c in sbom["components"]}
    assert f"pkg:pypi/fastapi@{metadata.version('fastapi')}" in purls
    assert f"pkg:pypi/sqlalchemy@{metadata.version('sqlalchemy')}" in purls
    status = {p["name"]: p["status"] for p in audit["pins"]}
    assert status == {"fastapi": "match", "not-a-real-package": "missing", "sqlalchemy": "differs"}
    # Offline, nothing was checked against a vulnerability database, and the file says so.
    assert audit["vulnerability_check"]["performed"] is False
    assert "not performed" in audit["vulnerability_check"]["reason"]
    assert "| 164.524(c)(2) |" in table and "**1 failed**" in table
    assert f"`{PASSED.split('[')[0]}` passed" in table
    assert len(drills) == 1 and drills[0]["ok"] is True and drills[0]["recovery_time_seconds"] > 0

    bad = tmp_path / "bad.zip"
    cases = {
        "controls/sbom.cdx.json": (None, "controls/sbom.cdx.json: required in an evidence pack but missing"),
        "registers/backup-drills.json": (None, "registers/backup-drills.json: required"),
        "controls/dependency-audit.json": (
            json.dumps({**audit, "vulnerability_check": {"performed": False}}).encode(),
            "controls/dependency-audit.json: not a well-formed",
        ),
        "controls/test-results.json": (b"{}", "controls/test-results.json: not a well-formed"),
    }
    for name, (data, expected) in cases.items():
        _resign(services, tenant.id, pack, bad, {name: data})
        done = runner.invoke(sealmail_cli, ["verify", str(bad), "--key", key])
        assert done.exit_code == 1 and expected in done.output, (name, done.output)


def test_without_results_the_pack_says_not_run(
    services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    pack = tmp_path / "pack.zip"
    built = runner.invoke(
        sealmail_cli, ["evidence", "pack", "--period", YEAR, "--out", str(pack)], env=cli_env(services)
    )
    assert built.exit_code == 0, built.output
    with zipfile.ZipFile(pack) as z:
        table = z.read("controls/hipaa-tests.md").decode()
        results = json.loads(z.read("controls/test-results.json"))
    assert "**Test results: not run**" in table and "| passed |" not in table
    assert results["run"] is False and results["tests"] == {}
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "something else"}')
    refused = runner.invoke(
        sealmail_cli,
        [
            "evidence",
            "pack",
            "--period",
            YEAR,
            "--out",
            str(tmp_path / "p2.zip"),
            "--test-results",
            str(broken),
        ],
        env=cli_env(services),
    )
    assert refused.exit_code == 2 and "not a results file" in refused.output


def test_gate_names_sections_without_a_passing_test() -> None:
    tests = {f"t::{s}": {"outcome": "passed", "sections": [s]} for s in supply.controls.SECTIONS}
    assert supply.unproven_in_results(tests) == []
    tests["t::164.312(b)"]["outcome"] = "skipped"
    assert supply.unproven_in_results(tests) == ["164.312(b)"]


def test_the_api_pack_carries_the_results_make_test_left_in_home(
    services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    left = services.settings.home / "test-results" / "hipaa-results.json"
    left.parent.mkdir(parents=True)
    left.write_bytes(_results(tmp_path).read_bytes())
    with TestClient(create_api(services)) as http:
        got = http.get(
            "/v1/evidence/pack",
            params={"period": YEAR},
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        )
    assert got.status_code == 200
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert z.read("controls/test-results.json") == left.read_bytes()
        assert "**1 failed**" in z.read("controls/hipaa-tests.md").decode()
