"""``sealmail users …`` and the ``make run`` banner: the first owner's one-time link opens the
console that ``sealmail serve`` mounts on the API role."""

from pathlib import Path

from tests.conftest import TenantFixture
from tests.integration.console.console_harness import console_server, enrol
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import _banner
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings

runner = CliRunner()


def env(settings: Settings) -> dict[str, str]:
    return {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}


def test_create_owner_prints_a_link_that_enrols_on_the_served_console(
    settings: Settings, services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    made = runner.invoke(sealmail_cli, ["users", "create-owner", "Boss@clinic.example"], env=env(settings))
    assert made.exit_code == 0, made.output
    link = made.output.split()[-1]
    assert "/console/welcome/" in link
    with console_server(services, as_served=True) as console:
        enrol(console, link.rsplit("/", 1)[1], "boss@clinic.example")
        assert console.client().get("/console/signin").status_code == 200
    again = runner.invoke(sealmail_cli, ["users", "create-owner", "boss@clinic.example"], env=env(settings))
    assert again.exit_code == 1 and "already set up" in again.output
    invited = runner.invoke(
        sealmail_cli, ["users", "invite", "help@clinic.example", "--role", "support"], env=env(settings)
    )
    assert invited.exit_code == 0 and "/console/welcome/" in invited.output
    bad = runner.invoke(
        sealmail_cli, ["users", "invite", "x@clinic.example", "--role", "god"], env=env(settings)
    )
    assert bad.exit_code == 2 and "role must be one of" in bad.output
    listed = runner.invoke(sealmail_cli, ["users", "list"], env=env(settings)).output
    assert (
        "boss@clinic.example  owner  active" in listed and "help@clinic.example  support  invited" in listed
    )


def test_the_run_banner_prints_the_console_and_a_first_owner_link(
    services: Services, tenant: TenantFixture
) -> None:
    banner = _banner(services)
    assert f"Console        http://{services.settings.api_host}:" in banner
    assert "/console/welcome/" in banner and "owner@" in banner
    # Each run replaces the previous link while the owner has not enrolled.
    assert _banner(services).split("/console/welcome/")[1][:20] != banner.split("/console/welcome/")[1][:20]


def test_cli_commands_take_a_tenants_name_when_several_exist(
    settings: Settings, services: Services, tenant: TenantFixture
) -> None:
    from tests.conftest import make_tenant

    other = make_tenant(services, "Lakeside Surgery", "lakeside.example")
    unnamed = runner.invoke(sealmail_cli, ["domains", "list"], env=env(settings))
    assert unnamed.exit_code != 0 and "pass --tenant <name or id>" in unnamed.output
    by_name = runner.invoke(
        sealmail_cli, ["domains", "list", "--tenant", "lakeside surgery"], env=env(settings)
    )
    assert (
        by_name.exit_code == 0
        and "lakeside.example" in by_name.output
        and "clinic.example" not in by_name.output
    )
    by_id = runner.invoke(sealmail_cli, ["domains", "list", "--tenant", other.id], env=env(settings))
    assert by_id.output == by_name.output
    users = runner.invoke(sealmail_cli, ["users", "list", "--tenant", "Clinic"], env=env(settings))
    assert users.exit_code == 0
    services.tenancy.create_tenant("Clinic", actor="test")  # now the name is ambiguous
    twice = runner.invoke(sealmail_cli, ["domains", "list", "--tenant", "clinic"], env=env(settings))
    assert (
        twice.exit_code != 0 and "2 tenants are named 'clinic'" in twice.output and tenant.id in twice.output
    )
    missing = runner.invoke(sealmail_cli, ["domains", "list", "--tenant", "Nowhere"], env=env(settings))
    assert missing.exit_code != 0 and "tenant Nowhere not found" in missing.output
