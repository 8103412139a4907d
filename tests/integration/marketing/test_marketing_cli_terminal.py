"""Values that tenants and patients control reach the operator's terminal as text, never as
escape sequences: ``sealmail marketing`` on contacts whose attributes carry OSC 52 (write the
clipboard), CSI (clear the screen) and a bidi override.  JSON output stays exact."""

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings
from sealmail.marketing.tables import mkt_contacts, mkt_lists

runner = CliRunner()
# Short enough for an 80-column table cell once escaped: the runner's terminal is narrow.
OSC52 = "\x1b]52;c;aGk=\x07"
CLEAR = "\x1b[2J"
RLO = "inv\u202efdp.exe"
HOSTILE = f"{OSC52}Austin{CLEAR}"
BIDI = f"{RLO}\x9b1A\x7f"


def _invoke(settings: Settings, tenant: str, *args: str) -> str:
    env = {
        "SEALMAIL_HOME": str(settings.home),
        "SEALMAIL_DATABASE_URL": settings.database_url,
        "COLUMNS": "300",
    }
    got = runner.invoke(sealmail_cli, ["marketing", *args, "--tenant", tenant], env=env)
    assert got.exception is None or isinstance(got.exception, SystemExit), got.output
    return got.output


def _hostile_contact(client: TestClient, declared: Keys, services: Services) -> str:
    body = {"email": "pat@example.net", "attributes": {"city": "Austin"}}
    r = client.post("/v1/marketing/contacts", json=body, headers=declared.admin)
    assert r.status_code == 201, r.text
    # Stored as it would be by an older release or another writer: the terminal must not
    # depend on every input path having refused controls.
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_contacts)
            .where(mkt_contacts.c.id == r.json()["id"])
            .values(attrs={"city": HOSTILE, "plan": BIDI})
        )
    return str(r.json()["id"])


def assert_no_controls(output: str) -> None:
    for ch in ("\x1b", "\x07", "\x9b", "\x7f", "\u202e"):
        assert ch not in output, repr(output)


def test_contact_show_escapes_osc52_csi_and_bidi_but_keeps_the_value_recognisable(
    client: TestClient, declared: Keys, services: Services, settings: Settings, tenant: TenantFixture
) -> None:
    cid = _hostile_contact(client, declared, services)
    shown = _invoke(settings, tenant.id, "contacts", "show", "pat@example.net")
    assert_no_controls(shown)
    flat = "".join(shown.split())
    assert "\\x1b]52;c;aGk=\\x07Austin\\x1b[2J" in flat, shown
    assert "inv\\u202efdp.exe\\x9b1A\\x7f" in flat, shown
    as_json = _invoke(settings, tenant.id, "contacts", "show", cid, "--json")
    assert "\x1b" not in as_json  # JSON escapes controls itself, and stays exact
    assert json.loads(as_json)["attributes"] == {"city": HOSTILE, "plan": BIDI}


def test_list_names_are_escaped_in_the_list_table_and_in_messages(
    declared: Keys, services: Services, settings: Settings, tenant: TenantFixture
) -> None:
    created = _invoke(settings, tenant.id, "lists", "create", RLO)
    assert_no_controls(created)
    with services.engine.begin() as conn:
        conn.execute(sa.update(mkt_lists).where(mkt_lists.c.tenant_id == tenant.id).values(name=HOSTILE))
    listed = _invoke(settings, tenant.id, "lists", "list")
    assert_no_controls(listed)
    assert "\\x1b]52;c;aGk=\\x07Austin" in listed, listed


def test_an_error_quoting_a_stray_closing_tag_is_said_not_a_traceback(
    settings: Settings, tenant: TenantFixture
) -> None:
    got = runner.invoke(
        sealmail_cli,
        ["marketing", "contacts", "show", "[/x]@example.net", "--tenant", tenant.id],
        env={
            "SEALMAIL_HOME": str(settings.home),
            "SEALMAIL_DATABASE_URL": settings.database_url,
            "COLUMNS": "300",
        },
    )
    assert got.exit_code == 2, got.output  # the friendly error, not MarkupError's traceback (1)
    assert "[/x]@example.net" in got.output and "Traceback" not in got.output
