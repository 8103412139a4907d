"""The activity review's settings (working hours, large-read threshold) over the REST API and the
CLI: tenant-scoped, `admin` to change, audited with before and after, and bad input refused
with the very message the console gives (one check: ``working_hours.review_settings``)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.evidence.harness import cli_env
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.cli import app as sealmail_cli
from sealmail.errors import InvalidRequest
from sealmail.evidence.working_hours import ReviewSettings, WorkingHours, review_settings
from sealmail.intake.api.app import create_api
from sealmail.store.tables import audit_log

pytestmark = pytest.mark.hipaa("164.308(a)(1)(ii)(D)")
runner = CliRunner()
URL = "/v1/evidence/activity-review/settings"
GOOD = {"time_zone": "America/New_York", "start": 8, "end": 17, "weekdays": [0, 1, 2, 3], "large_reads": 20}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _audited(services: Services) -> list[tuple[str, str | None, dict[str, Any]]]:
    query = (
        sa.select(audit_log.c.actor, audit_log.c.tenant_id, audit_log.c.details)
        .where(audit_log.c.action == str(AuditAction.WORKING_HOURS_SET))
        .order_by(audit_log.c.seq)
    )
    with services.engine.connect() as conn:
        return [(r.actor, r.tenant_id, dict(r.details)) for r in conn.execute(query)]


def test_api_reads_and_sets_the_review_settings(services: Services, tenant: TenantFixture) -> None:
    other = make_tenant(services, "Other clinic", "other.example")
    _, reader = services.tenancy.create_api_key(tenant.id, "ro", ["read"], actor="test")
    with TestClient(create_api(services)) as http:
        first = http.get(URL, headers=_bearer(reader))
        assert first.status_code == 200, first.text
        assert first.json() == {
            "time_zone": "UTC",
            "start": 7,
            "end": 19,
            "weekdays": [0, 1, 2, 3, 4],
            "large_reads": 50,
            "described": "Mon, Tue, Wed, Thu, Fri 07:00–19:00 UTC",
        }
        denied = http.put(URL, json=GOOD, headers=_bearer(reader))
        assert denied.status_code == 403
        saved = http.put(URL, json=GOOD, headers=_bearer(tenant.api_key))
        assert saved.status_code == 200, saved.text
        assert saved.json()["large_reads"] == 20 and saved.json()["time_zone"] == "America/New_York"
        # Omitting the threshold keeps it.
        kept = http.put(URL, json={**GOOD, "large_reads": None, "start": 9}, headers=_bearer(tenant.api_key))
        assert kept.json()["large_reads"] == 20 and kept.json()["start"] == 9
        # Another tenant's settings are its own.
        theirs = http.get(URL, headers=_bearer(other.api_key)).json()
        assert theirs["time_zone"] == "UTC" and theirs["large_reads"] == 50
        # "settings" is not taken for a month.
        assert http.get("/v1/evidence/activity-review/2026-11", headers=_bearer(reader)).status_code == 200
    assert services.evidence.activity_review.review_settings(tenant.id) == ReviewSettings(
        WorkingHours("America/New_York", 9, 17, (0, 1, 2, 3)), 20
    )
    [(actor, tenant_id, details), _] = _audited(services)
    assert actor.startswith("key_") and tenant_id == tenant.id
    assert details["before"] is None and details["after"]["large_reads"] == 20


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, 400, "an IANA name"),
        ({"start": 18, "end": 9}, 400, "start before end"),
        ({"end": 25}, 400, "start before end"),
        ({"weekdays": []}, 400, "at least one"),
        ({"weekdays": [7]}, 400, "Monday (0) to Sunday (6)"),
        ({"large_reads": 0}, 400, "large-read threshold"),
        ({"large_reads": 10_001}, 400, "large-read threshold"),
        ({"large_reads": True}, 422, ""),
        ({"start": "8"}, 422, ""),
        ({"weekdays": [0] * 8}, 422, ""),
        ({"extra": 1}, 422, ""),
    ],
)
def test_api_refuses_bad_settings_with_a_problem(
    services: Services, tenant: TenantFixture, change: dict[str, object], status: int, message: str
) -> None:
    with TestClient(create_api(services)) as http:
        answer = http.put(URL, json={**GOOD, **change}, headers=_bearer(tenant.api_key))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert message in answer.json()["detail"] if message else True
    assert _audited(services) == []


def test_cli_shows_and_sets_with_the_same_check(services: Services, tenant: TenantFixture) -> None:
    env = cli_env(services)
    base = ["evidence", "review", "settings", "--tenant", tenant.id]
    shown = runner.invoke(sealmail_cli, base, env=env)
    assert shown.exit_code == 0 and '"large_reads": 50' in shown.output
    changed = runner.invoke(
        sealmail_cli, [*base, "--large-reads", "5", "--weekday", "5", "--weekday", "6"], env=env
    )
    assert changed.exit_code == 0, changed.output
    assert services.evidence.activity_review.review_settings(tenant.id) == ReviewSettings(
        WorkingHours("UTC", 7, 19, (5, 6)), 5
    )
    [(actor, _, details)] = _audited(services)
    assert actor == "cli" and details["after"]["weekdays"] == [5, 6]
    for args, expected in [
        (["--start", "7.5"], "whole hours from 0 to 24"),
        (["--time-zone", "Mars/Olympus"], "an IANA name"),
        (["--large-reads", "many"], "large-read threshold"),
    ]:
        bad = runner.invoke(sealmail_cli, [*base, *args], env=env)
        assert bad.exit_code == 2 and expected in bad.output, (args, bad.output)
    assert len(_audited(services)) == 1


def test_one_check_for_console_form_api_body_and_cli_options() -> None:
    # The console passes form strings, the API JSON numbers, the CLI option strings: same result.
    assert review_settings("UTC", "8", "17", ["1", "0", "1"], "7") == review_settings("UTC", 8, 17, [0, 1], 7)
    for bad in [("UTC", "8", "17", ["0"], True), ("UTC", "", "17", ["0"], 7), ("UTC", 8, 17, ["x"], 7)]:
        with pytest.raises(InvalidRequest):
            review_settings(*bad)
