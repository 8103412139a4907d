"""The dependency audit against a loopback OSV API: `sealmail evidence deps --refresh` asks it
about every lock-file pin through the SSRF-safe client, stores the answer with its time, and
every evidence pack — CLI, API and console alike — carries the same section, offline, saying
how old its advisories are; a pack never claims a check nobody ran."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.console.console_harness import console_server, invite_as
from tests.support.ca import TestCA
from tests.support.osv_server import OsvServer, advisory
from typer.testing import CliRunner

from sealmail.app import Services, build_services
from sealmail.cli import app as sealmail_cli
from sealmail.intake.api.app import create_api
from sealmail.users.roles import Role

pytestmark = [pytest.mark.hipaa("164.308(a)(1)(ii)(A)"), pytest.mark.timeout(60)]

runner = CliRunner()
YEAR = str(datetime.now(UTC).year)
FASTAPI = metadata.version("fastapi")


@pytest.fixture
def osv(ca: TestCA) -> Iterator[OsvServer]:
    with OsvServer(ca) as server:
        server.add(advisory("GHSA-jjjj-0001", "Jinja2", ["2.4"], fixed="2.10.1", severity="HIGH"))
        server.add(advisory("PYSEC-2026-7", "jinja2", ["2.4"], fixed="2.11.3"))  # no severity
        server.add(advisory("GHSA-ffff-0002", "fastapi", [FASTAPI], severity="LOW"))
        server.add(advisory("GHSA-old-0003", "fastapi", ["0.1.0"], fixed="0.2.0", severity="CRITICAL"))
        yield server


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text(f"fastapi=={FASTAPI}\nJinja2==2.4\nnot-a-real-package==1.0\n# a comment\n")
    return path


@pytest.fixture
def audited(tmp_path: Path, db_url: str, osv: OsvServer, ca: TestCA, lock: Path) -> Iterator[Services]:
    settings = make_settings(
        tmp_path, db_url, osv_url=osv.url, tls_ca_file=Path(ca.ca_file), evidence_lock_file=lock
    )
    svc = build_services(settings)
    yield svc
    svc.close()


def env(svc: Services, **more: str) -> dict[str, str]:
    s = svc.settings
    return {
        "SEALMAIL_HOME": str(s.home),
        "SEALMAIL_DATABASE_URL": s.database_url,
        "SEALMAIL_OSV_URL": s.osv_url,
        "SEALMAIL_TLS_CA_FILE": str(s.tls_ca_file),
        "SEALMAIL_EVIDENCE_LOCK_FILE": str(s.evidence_lock_file),
        "SEALMAIL_ALLOW_LOOPBACK_FETCH": "true",
        **more,
    }


def _api_pack(svc: Services, tenant: TenantFixture) -> bytes:
    with TestClient(create_api(svc)) as http:
        answer = http.get(
            "/v1/evidence/pack",
            params={"period": YEAR},
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        )
    assert answer.status_code == 200, answer.text
    return answer.content


def _section(pack: bytes) -> dict[str, object]:
    return json.loads(zipfile.ZipFile(io.BytesIO(pack)).read("controls/dependency-audit.json"))


def _comparable(section: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in section.items() if k != "generated_at"}


def test_refresh_lists_findings_and_exits_by_threshold(audited: Services, osv: OsvServer) -> None:
    before = runner.invoke(sealmail_cli, ["evidence", "deps"], env=env(audited))
    assert before.exit_code == 2 and "no OSV advisories were ever fetched" in before.output

    done = runner.invoke(sealmail_cli, ["evidence", "deps", "--refresh"], env=env(audited))
    assert done.exit_code == 1, done.output
    assert f"source OSV (https://127.0.0.1:{osv.web.port})" in done.output
    assert "GHSA-jjjj-0001  jinja2 2.4  fixed in 2.10.1  high" in done.output
    assert "PYSEC-2026-7  jinja2 2.4  fixed in 2.11.3  unknown" in done.output
    assert f"GHSA-ffff-0002  fastapi {FASTAPI}  fixed in no fix  low" in done.output
    assert "GHSA-old-0003" not in done.output  # another fastapi version
    assert "3 pins checked; 3 advisories" in done.output
    # One querybatch with every pin, by normalized name and exact version.
    [queries] = osv.queries
    asked = {(q["package"]["name"], q["package"]["ecosystem"], q["version"]) for q in queries}
    assert asked == {
        ("fastapi", "PyPI", FASTAPI),
        ("jinja2", "PyPI", "2.4"),
        ("not-a-real-package", "PyPI", "1.0"),
    }
    # Served from the stored answer: no second fetch, thresholds applied to it.
    critical = runner.invoke(sealmail_cli, ["evidence", "deps", "--fail-on", "critical"], env=env(audited))
    assert critical.exit_code == 0, critical.output
    assert "not fetched for this report" in critical.output
    low = runner.invoke(sealmail_cli, ["evidence", "deps", "--fail-on", "low"], env=env(audited))
    assert low.exit_code == 1 and "3 advisories at or above low" in low.output
    bad = runner.invoke(sealmail_cli, ["evidence", "deps", "--fail-on", "severe"], env=env(audited))
    assert bad.exit_code == 2 and "--fail-on" in bad.output
    assert len(osv.queries) == 1


def test_every_pack_carries_the_same_dated_section(
    audited: Services, osv: OsvServer, lock: Path, tmp_path: Path
) -> None:
    tenant = make_tenant(audited)
    assert runner.invoke(sealmail_cli, ["evidence", "deps", "--refresh"], env=env(audited)).exit_code == 1
    fetched_at = audited.evidence.dependencies.snapshot()
    assert fetched_at is not None

    out = tmp_path / "pack.zip"
    built = runner.invoke(
        sealmail_cli,
        ["evidence", "pack", "--period", YEAR, "--out", str(out), "--tenant", tenant.id],
        env=env(audited),
    )
    assert built.exit_code == 0, built.output
    from_cli = _section(out.read_bytes())
    answer = _api_pack(audited, tenant)
    from_api = _section(answer)
    with console_server(audited) as console:
        officer = invite_as(console, tenant.id, Role.COMPLIANCE)
        page = officer.http.get("/console/evidence/pack", params={"period": YEAR})
        assert page.status_code == 200
    from_console = _section(page.content)

    assert _comparable(from_cli) == _comparable(from_api) == _comparable(from_console)
    check = from_api["vulnerability_check"]
    assert isinstance(check, dict)
    assert check["performed"] is True and check["source"] == "OSV"
    assert check["as_of"] == fetched_at.fetched_at
    assert check["note"].startswith(f"advisories as of {fetched_at.fetched_at}, source OSV")
    assert {f["id"] for f in check["findings"]} == {"GHSA-jjjj-0001", "PYSEC-2026-7", "GHSA-ffff-0002"}
    assert check["by_severity"]["high"] == 1 and check["by_severity"]["unknown"] == 1
    status = {p["name"]: p["status"] for p in from_api["pins"]}  # type: ignore[union-attr]
    assert status == {"fastapi": "match", "jinja2": "differs", "not-a-real-package": "missing"}

    # The lock moves on without a refresh: the new pin is named as not checked, never clean.
    lock.write_text(lock.read_text() + "requests==2.0.0\n")
    again = _api_pack(audited, tenant)
    later = _section(again)["vulnerability_check"]
    assert isinstance(later, dict)
    assert later["not_checked"] == ["requests==2.0.0"] and later["as_of"] == fetched_at.fetched_at


def test_offline_refresh_fails_and_keeps_the_dated_answer(
    audited: Services, osv: OsvServer, tenant_dead_url: str
) -> None:
    assert runner.invoke(sealmail_cli, ["evidence", "deps", "--refresh"], env=env(audited)).exit_code == 1
    kept = audited.evidence.dependencies.snapshot()
    offline = runner.invoke(
        sealmail_cli, ["evidence", "deps", "--refresh"], env=env(audited, SEALMAIL_OSV_URL=tenant_dead_url)
    )
    assert offline.exit_code == 2 and "OSV advisory database is unreachable" in offline.output
    assert audited.evidence.dependencies.snapshot() == kept
    shown = runner.invoke(sealmail_cli, ["evidence", "deps"], env=env(audited))
    assert kept is not None and f"advisories as of {kept.fetched_at}" in shown.output


@pytest.fixture
def tenant_dead_url() -> str:
    """An https URL on loopback where nothing listens."""
    from tests.support.ports import unused_port

    return f"https://127.0.0.1:{unused_port()}"


def test_pack_without_advisories_says_not_performed(audited: Services) -> None:
    tenant: TenantFixture = make_tenant(audited)
    answer = _api_pack(audited, tenant)
    check = _section(answer)["vulnerability_check"]
    assert check == {"performed": False, "reason": check["reason"]}  # type: ignore[index]
    assert "sealmail evidence deps --refresh" in check["reason"]  # type: ignore[index]
