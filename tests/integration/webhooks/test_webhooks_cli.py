"""``sealmail webhooks``: add, list, rotate and replay print what the service returned."""

from __future__ import annotations

import re

from tests.conftest import TenantFixture
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings

runner = CliRunner()


def test_add_list_rotate_and_replay(settings: Settings, services: Services, tenant: TenantFixture) -> None:
    env = {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}
    url = "https://hooks.example.org/in"
    added = runner.invoke(
        sealmail_cli, ["webhooks", "add", url, "--stream", "transactional", "--full"], env=env
    )
    assert added.exit_code == 0, added.output
    found = re.search(r"endpoint (whe_\w+) \(full payloads\)", added.output)
    assert found is not None, added.output
    endpoint_id = found.group(1)
    assert "signing secret (shown once)" in added.output

    listed = runner.invoke(sealmail_cli, ["webhooks", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    # Whitespace-normalised: the console wraps at its width.
    assert f"{endpoint_id} active full {url} [transactional; all events]" in " ".join(listed.output.split())

    rotated = runner.invoke(
        sealmail_cli, ["webhooks", "rotate", endpoint_id, "--overlap-hours", "2"], env=env
    )
    assert rotated.exit_code == 0, rotated.output
    until = re.search(r"also signs until (\S+)", rotated.output)
    assert until is not None and until.group(1).startswith("20"), rotated.output

    replayed = runner.invoke(
        sealmail_cli, ["webhooks", "replay", endpoint_id, "--since", "2020-01-01T00:00:00+00:00"], env=env
    )
    assert replayed.exit_code == 0, replayed.output
    assert f"0 deliveries queued for {endpoint_id}" in replayed.output
    missing = runner.invoke(sealmail_cli, ["webhooks", "replay", "whd_nope"], env=env)
    assert missing.exit_code != 0
