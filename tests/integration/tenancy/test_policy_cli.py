"""``sealmail policy``: weakening a protective setting from the command line needs a written
reason (exit 2 without one, nothing saved), and the reason lands in the decisions register
and the audit log; strengthening needs none."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings
from sealmail.store.tables import audit_log
from sealmail.tenancy.decisions import Decisions

runner = CliRunner()
REASON = "the lab's portal is down until Monday (ticket 4411)"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}


def policy(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(sealmail_cli, ["policy", *args], env=env)
    assert result.exit_code != 1, result.exception  # an expected error is exit 2, never a traceback
    return result.exit_code, " ".join(result.output.split())  # the console wraps at its width


def settings_of(services: Services, tenant: TenantFixture) -> dict[str, object]:
    return dict(services.tenancy.get_tenant(tenant.id).settings)


def test_weakening_needs_a_reason_and_lands_in_the_register(
    env: dict[str, str], services: Services, tenant: TenantFixture
) -> None:
    # Strengthening: no reason needed, nothing in the register.
    assert policy(env, "set", "secureline.force_portal", "on") == (0, '{"secureline.force_portal": "on"}')
    assert policy(env, "set", "tls_policy.transactional", "require_verified")[0] == 0
    assert Decisions(services.engine).register(tenant.id) == []

    for weakening in (
        ["secureline.force_portal", "off"],
        ["tls_policy.transactional", "default"],
        ["dlp.enabled", "off"],
        ["dlp.default_action", "none"],
    ):
        code, output = policy(env, "set", *weakening)
        assert code == 2, output
        assert "--reason" in output and "decisions register" in output
        code, output = policy(env, "set", *weakening, "--reason", "too short")
        assert code == 2 and "at least 10 characters" in output
    after_refusals = settings_of(services, tenant)
    assert after_refusals["secureline"] == {"force_portal": True}
    assert after_refusals["tls_policy"] == {"transactional": "require_verified"}
    assert "dlp" not in after_refusals

    code, output = policy(
        env, "set", "secureline.force_portal", "off", "--reason", REASON, "--tenant", "Clinic"
    )
    assert code == 0, output
    assert "weakened secureline.force_portal" in output
    assert settings_of(services, tenant)["secureline"] == {"force_portal": False}
    [decision] = Decisions(services.engine).register(tenant.id)
    assert (decision.setting, decision.before, decision.after) == ("secureline.force_portal", True, False)
    assert (decision.reason, decision.actor) == (REASON, "cli")
    with services.engine.connect() as conn:
        recorded = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "decision:recorded")
        ).scalar_one()
    assert recorded == {"setting": "secureline.force_portal", "reason": REASON}

    code, listed = policy(env, "decisions")
    assert code == 0 and f"secureline.force_portal true -> false cli {REASON}" in listed, listed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["secureline.nothing", "on"], "unknown setting"),
        (["secureline.force_portal", "maybe"], "give on or off"),
        (["dlp.default_action", "shred"], "give one of"),
        (["tls_policy.phi", "opportunistic"], "below the phi stream's minimum"),
        (["tls_policy.carrier-pigeon", "require"], "no stream"),
    ],
)
def test_bad_settings_are_refused_with_a_message(
    env: dict[str, str], services: Services, tenant: TenantFixture, args: list[str], message: str
) -> None:
    code, output = policy(env, "set", *args, "--reason", REASON)
    assert code == 2 and message in output, output
    assert Decisions(services.engine).register(tenant.id) == []
