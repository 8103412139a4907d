"""Retention: the six-year floor, legal holds, and purge by crypto-shredding (164.316(b)(2),
164.530(j)).  The purge runs "years later" by handing it a future ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.evidence.harness import cli_env
from typer.testing import CliRunner

from sealmail import audit
from sealmail.app import Services, build_evidence
from sealmail.audit import AuditAction
from sealmail.cli import app as sealmail_cli
from sealmail.errors import NotFound, ValidationFailed
from sealmail.evidence.retention import FLOOR_DAYS, RetentionPolicy
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import audit_log, events, messages, recipients

pytestmark = [pytest.mark.hipaa("164.316(b)(2)"), pytest.mark.hipaa("164.530(j)")]

runner = CliRunner()


def _send(services: Services, tenant: TenantFixture, to: str, text: str = "Your biopsy was benign.") -> str:
    body = MessageIn.model_validate(
        {"from": "results@clinic.example", "to": [to], "subject": "Results", "text": text, "stream": "phi"}
    )
    accepted, _ = services.messages.submit(
        tenant.principal, compose.from_message(body, "clinic.example", 1000)
    )
    message_id = accepted.id
    services.messages.cancel(tenant.principal, message_id)  # terminal: nothing in flight any more
    return message_id


def _key(services: Services, message_id: str) -> bytes | None:
    with services.engine.connect() as conn:
        return conn.execute(
            sa.select(messages.c.wrapped_data_key).where(messages.c.id == message_id)
        ).scalar()


def test_policies_below_six_years_are_refused(services: Services, tenant: TenantFixture) -> None:
    retention = build_evidence(services).retention
    with pytest.raises(ValidationFailed, match="six-year floor"):
        retention.set_policy(tenant.id, RetentionPolicy(30, 365, FLOOR_DAYS), "test")
    with pytest.raises(ValidationFailed, match=r"audit_days 2000 days is below the six-year floor"):
        retention.set_policy(tenant.id, RetentionPolicy(30, FLOOR_DAYS, 2000), "test")
    assert retention.policy(tenant.id) == RetentionPolicy()  # nothing half-stored
    retention.set_policy(tenant.id, RetentionPolicy(30, FLOOR_DAYS, FLOOR_DAYS), "test")
    assert retention.policy(tenant.id).content_days == 30


def test_purge_shreds_what_is_past_and_keeps_what_is_held(services: Services, tenant: TenantFixture) -> None:
    evidence = build_evidence(services)
    retention = evidence.retention
    retention.set_policy(tenant.id, RetentionPolicy(30, FLOOR_DAYS, FLOOR_DAYS), "officer")
    plain = _send(services, tenant, "ann@example.org")
    by_message = _send(services, tenant, "bob@example.org")
    by_recipient = _send(services, tenant, "Cy@Example.org")
    hold_m = retention.place_hold(tenant.id, "message", by_message, "litigation 2026-17", "officer")
    retention.place_hold(tenant.id, "recipient", "cy@example.org", "subpoena", "officer")

    # A day later nothing is due; 31 days later the unheld message is.
    assert retention.purge(tenant.id, "test", datetime.now(UTC) + timedelta(days=1)).shredded == 0
    result = retention.purge(tenant.id, "test", datetime.now(UTC) + timedelta(days=31))
    assert (result.shredded, result.held) == (1, 2)

    assert _key(services, plain) is None
    with pytest.raises(NotFound, match="destroyed"):
        services.messages.content(tenant.principal, plain)
    for kept in (by_message, by_recipient):
        assert _key(services, kept) is not None
        assert services.messages.content(tenant.principal, kept).text.strip() == "Your biopsy was benign."

    # Released, the message is purged on the next run; a second run finds nothing more.
    retention.release_hold(tenant.id, hold_m.id, "officer")
    later = datetime.now(UTC) + timedelta(days=32)
    assert retention.purge(tenant.id, "test", later).shredded == 1
    assert retention.purge(tenant.id, "test", later).shredded == 0
    assert _key(services, by_message) is None and _key(services, by_recipient) is not None

    with services.engine.connect() as conn:
        purged = conn.execute(
            sa.select(audit_log.c.target).where(audit_log.c.action == str(AuditAction.RETENTION_PURGED))
        ).scalars()
        assert sorted(purged) == sorted([plain, by_message])
    assert audit.verify(services.engine).ok


def test_tenant_hold_and_metadata_pseudonymised_after_six_years(
    services: Services, tenant: TenantFixture
) -> None:
    retention = build_evidence(services).retention
    message_id = _send(services, tenant, "dee@example.org")
    hold = retention.place_hold(tenant.id, "tenant", "", "regulator inquiry", "officer")
    seven_years = datetime.now(UTC) + timedelta(days=7 * 365)
    assert retention.purge(tenant.id, "test", seven_years).shredded == 0
    assert _key(services, message_id) is not None
    retention.release_hold(tenant.id, hold.id, "officer")
    result = retention.purge(tenant.id, "test", seven_years)
    assert (result.shredded, result.pseudonymised) == (1, 1)
    with services.engine.connect() as conn:
        address = conn.execute(
            sa.select(recipients.c.address).where(recipients.c.message_id == message_id)
        ).scalar()
    assert address is not None and address.startswith("redacted-") and "dee" not in address
    with services.engine.connect() as conn:
        named = conn.execute(
            sa.select(events.c.recipient).where(
                events.c.message_id == message_id, events.c.recipient.is_not(None)
            )
        ).scalars()
        named = list(named)
    assert named and all(n.startswith("redacted-") for n in named), named


def test_holds_are_per_tenant(services: Services, tenant: TenantFixture) -> None:
    from tests.conftest import make_tenant

    other = make_tenant(services, "Other", "other.example")
    retention = build_evidence(services).retention
    message_id = _send(services, tenant, "eve@example.org")
    with pytest.raises(NotFound):
        retention.place_hold(other.id, "message", message_id, "not theirs", "x")
    hold = retention.place_hold(tenant.id, "message", message_id, "ours", "x")
    with pytest.raises(NotFound):
        retention.release_hold(other.id, hold.id, "x")


def test_cli_sets_policy_holds_and_purges(services: Services, tenant: TenantFixture) -> None:
    env = cli_env(services)
    refused = runner.invoke(sealmail_cli, ["evidence", "retention", "set", "--audit-days", "365"], env=env)
    assert refused.exit_code == 2 and "six-year floor" in refused.output, refused.output
    message_id = _send(services, tenant, "fay@example.org")
    held = runner.invoke(
        sealmail_cli, ["evidence", "hold", "place", "--message", message_id, "--reason", "audit"], env=env
    )
    assert held.exit_code == 0, held.output
    ran = runner.invoke(sealmail_cli, ["evidence", "retention", "purge", "--as-of", "2040-01-01"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "shredded 0" in ran.output and "held 1" in ran.output
    report = runner.invoke(sealmail_cli, ["evidence", "retention", "report"], env=env)
    assert report.exit_code == 0 and "legal_hold" in report.output and message_id in report.output, (
        report.output
    )


def test_api_refuses_short_policy_with_a_problem_and_holds_survive_purge(
    services: Services, tenant: TenantFixture
) -> None:
    from fastapi.testclient import TestClient

    from sealmail.intake.api.app import create_api

    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    message_id = _send(services, tenant, "gus@example.org")
    with TestClient(create_api(services)) as http:
        short = http.put(
            "/v1/evidence/retention",
            json={"content_days": 1, "metadata_days": 30, "audit_days": FLOOR_DAYS},
            headers=auth,
        )
        assert short.status_code == 422, short.text
        assert short.headers["content-type"].startswith("application/problem+json")
        assert short.json()["errors"][0]["field"] == "metadata_days"
        ok = http.put(
            "/v1/evidence/retention",
            json={"content_days": 1, "metadata_days": FLOOR_DAYS, "audit_days": FLOOR_DAYS},
            headers=auth,
        )
        assert ok.status_code == 200 and ok.json()["content_days"] == 1
        bad_scope = http.post("/v1/evidence/holds", json={"scope": "planet", "reason": "x"}, headers=auth)
        assert bad_scope.status_code == 422
        placed = http.post(
            "/v1/evidence/holds",
            json={"scope": "message", "target": message_id, "reason": "audit"},
            headers=auth,
        )
        assert placed.status_code == 201, placed.text
        missing = http.post("/v1/evidence/holds/lgh_nope/release", headers=auth)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        purged = http.post("/v1/evidence/retention/purge", headers=auth)
        assert purged.status_code == 200  # the message is a second old: nothing due yet
        report = http.get("/v1/evidence/reports/retention", headers=auth)
        assert report.status_code == 200 and placed.json()["id"] in report.text
        unknown = http.get("/v1/evidence/reports/everything", headers=auth)
        assert unknown.status_code == 400
    assert _key(services, message_id) is not None
