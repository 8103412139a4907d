"""``sealmail remote …`` against the real API: the CLI goes through the typed client."""

from __future__ import annotations

from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer
from typer.testing import CliRunner

from sealmail.client.cli import remote_app

runner = CliRunner()


def test_remote_send_then_get_and_events_use_env_credentials(api: ApiServer, tenant: TenantFixture) -> None:
    env = {"SEALMAIL_API_URL": api.url, "SEALMAIL_API_KEY": tenant.api_key}
    sent = runner.invoke(
        remote_app, ["send", "--to", "p@example.net", "--from", "noreply@clinic.example"], env=env
    )
    assert sent.exit_code == 0, sent.output
    message_id = sent.output.split()[1]
    assert message_id.startswith("msg_")
    got = runner.invoke(remote_app, ["get", message_id], env=env)
    assert got.exit_code == 0 and message_id in got.output
    events = runner.invoke(remote_app, ["events", "--message-id", message_id], env=env)
    assert "message.accepted" in events.output
    captured = runner.invoke(remote_app, ["captured", "--url", api.url, "--key", tenant.api_key])
    assert captured.exit_code == 0 and "nothing captured yet" in captured.output
    assert tenant.api_key not in sent.output + got.output + events.output


def test_remote_errors_print_the_problem_and_exit_2(api: ApiServer, tenant: TenantFixture) -> None:
    result = runner.invoke(remote_app, ["get", "msg_missing", "--url", api.url, "--key", tenant.api_key])
    assert result.exit_code == 2
    assert "404" in result.output
    bad = runner.invoke(
        remote_app,
        ["send", "--to", "p@example.net", "--from", "x@unverified.example", "--stream", "nope"],
        env={"SEALMAIL_API_URL": api.url, "SEALMAIL_API_KEY": tenant.api_key},
    )
    assert bad.exit_code == 2
    assert "stream" in bad.output
