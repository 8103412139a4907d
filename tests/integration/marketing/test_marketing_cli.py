"""``sealmail marketing …`` end to end on SQLite and PostgreSQL, through the same services
(and audit entries, actor ``cli``) as the API: segments, lists, contacts (sensitive values
only with an audited --reveal), consent history and authorizations, campaigns from JSON to
audience snapshot and CSV stats, caps, conversions, journeys.  Hostile input — bad JSON, an
over-deep rule, unknown ids, another tenant's ids — exits 2 with a message, never a
traceback, and shows nothing of the other tenant."""

import csv
import io
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings
from sealmail.store.tables import audit_log

runner = CliRunner()
TEMPLATE = {"name": "note", "subject": "Hello", "text": "A note for you."}
AUSTIN = {"attr": "city", "op": "eq", "value": "Austin"}
PATIENTS = [
    {
        "email": "ann@example.net",
        "attributes": {"city": "Austin", "diagnosis": "asthma", "hiv_status": "positive"},
    },
    {"email": "bob@example.net", "attributes": {"city": "Boston", "plan": "gold"}},
    {"email": "cy@example.net", "attributes": {"city": "Austin", "plan": "silver"}},
]
CAMPAIGN = {
    "name": "Flu shots",
    "purpose": "treatment",
    "segment": "austin",
    "from": "care@clinic.example",
    "variants": [{"name": "a", "template": "note"}],
}
AUTHORIZATION = {
    "purpose": "marketing",
    "information": "name and email",
    "disclosed_by": "Clinic",
    "disclosed_to": "Clinic marketing",
    "purpose_statement": "News about our services",
    "signed_by": "Ann",
    "statements": ["right_to_revoke", "conditioning", "redisclosure"],
    "document_sha256": "ab" * 32,
}


class Cli:
    def __init__(self, settings: Settings, tenant: str) -> None:
        self.env = {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}
        self.tenant = tenant

    def __call__(self, *args: str, tenant: str | None = None, stdin: str | None = None) -> Result:
        argv = ["marketing", *args, "--tenant", tenant or self.tenant]
        got = runner.invoke(sealmail_cli, argv, env=self.env, input=stdin)
        assert "Traceback" not in got.output, got.output
        assert got.exception is None or isinstance(got.exception, SystemExit), got.output
        return got

    def ok(self, *args: str, **kw: Any) -> Result:
        got = self(*args, **kw)
        assert got.exit_code == 0, got.output
        return got

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kw).stdout)

    def refused(self, *args: str, code: int = 2, **kw: Any) -> str:
        got = self(*args, **kw)
        assert got.exit_code == code, got.output
        assert "error" in got.output or code == 1, got.output
        return " ".join(got.output.split())  # as one line: the terminal wraps long messages


@pytest.fixture
def cli(settings: Settings, tenant: TenantFixture, other_tenant: TenantFixture) -> Cli:
    return Cli(settings, tenant.id)


@pytest.fixture
def people(client: TestClient, declared: Keys) -> dict[str, str]:
    r = client.post("/v1/marketing/contacts/batch", json={"contacts": PATIENTS}, headers=declared.admin)
    assert r.status_code == 200 and r.json()["failed"] == 0, r.text
    page = client.get("/v1/marketing/contacts", headers=declared.admin).json()["data"]
    return {c["email"].split("@")[0]: c["id"] for c in page}


def actions(services: Services, actor: str = "cli") -> list[str]:
    with services.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_log.c.action).where(audit_log.c.actor == actor).order_by(audit_log.c.seq)
            ).scalars()
        )


def test_segments_are_saved_counted_and_previewed_with_reasons(
    cli: Cli, people: dict[str, str], services: Services, tmp_path: Path
) -> None:
    saved = cli.json("segments", "save", "austin", "--rule", json.dumps(AUSTIN))
    assert (saved["name"], saved["version"], saved["phi_classes"]) == ("austin", 1, ["demographic"])
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps({"all": [AUSTIN, {"attr": "plan", "op": "eq", "value": "silver"}]}))
    assert "austin v2 saved" in cli.ok("segments", "save", "austin", "--file", str(rule_file)).output
    assert [s["version"] for s in cli.json("segments", "list")] == [1, 2]
    assert cli.json("segments", "count", "austin") == {"count": 1, "phi_classes": ["demographic", "none"]}
    assert "1 contacts match" in cli.ok("segments", "count", "austin").output
    preview = cli.json("segments", "preview", "--rule", json.dumps(AUSTIN), "--sample", "5")
    assert preview["count"] == 2
    assert {s["email"] for s in preview["sample"]} == {"ann@example.net", "cy@example.net"}
    assert all(s["matched"] for s in preview["sample"])
    table = cli.ok("segments", "preview", saved["id"]).output
    assert "2 contacts match" in table and "cy@example.net" in table
    from_stdin = cli.json("segments", "count", "--file", "-", stdin=json.dumps(AUSTIN))
    assert from_stdin["count"] == 2
    done = actions(services)
    assert done.count("mkt_segment:saved") == 2 and done.count("mkt_segment:evaluated") == 5


def test_lists_are_created_filled_and_emptied_by_email_or_id(
    cli: Cli, people: dict[str, str], services: Services, tmp_path: Path
) -> None:
    assert "list vip created" in cli.ok("lists", "create", "vip").output
    added = cli.ok("lists", "add", "vip", "ann@example.net", people["bob"]).output
    assert "2 added to vip" in added
    names = tmp_path / "more.txt"
    names.write_text("ann@example.net\n\ncy@example.net\n")
    assert (
        "1 added to vip (1 already members)"
        in cli.ok("lists", "add", "vip", "--from-file", str(names)).output
    )
    assert cli.json("lists", "list") == [
        {"id": cli.json("lists", "list")[0]["id"], "name": "vip", "members": 3}
    ]
    assert "2 removed from vip" in cli.ok("lists", "remove", "vip", "ann@example.net", people["cy"]).output
    assert cli.json("lists", "list")[0]["members"] == 1
    in_list = cli.json("segments", "count", "--rule", json.dumps({"list": "vip"}))
    assert in_list["count"] == 1
    done = actions(services)
    for action in ("mkt_list:created", "mkt_list:members_added", "mkt_list:members_removed"):
        assert action in done
    assert "no list named 'nope'" in cli.refused("lists", "add", "nope", "ann@example.net")
    assert "no contact with the email" in cli.refused("lists", "add", "vip", "zed@example.net")
    assert "exists" in cli.refused("lists", "create", "vip")  # a conflict: exit 2


def test_contact_show_withholds_clinical_and_sensitive_values_unless_revealed_and_audited(
    cli: Cli, people: dict[str, str], services: Services
) -> None:
    plain = cli.ok("contacts", "show", "ann@example.net").output
    assert "Austin" in plain and "asthma" not in plain and "positive" not in plain
    assert "diagnosis (clinical)" in plain and "hiv_status (sensitive)" in plain and "--reveal" in plain
    shown = cli.json("contacts", "show", people["ann"])
    assert shown["attributes"] == {"city": "Austin"}
    assert {w["name"] for w in shown["withheld"]} >= {"diagnosis", "hiv_status", "recall_due"}
    assert "mkt_contact:revealed" not in actions(services)
    revealed = cli.json("contacts", "show", "ann@example.net", "--reveal")
    assert revealed["attributes"] == {"city": "Austin", "diagnosis": "asthma", "hiv_status": "positive"}
    assert revealed["withheld"] == []
    with services.engine.connect() as conn:
        entry = conn.execute(sa.select(audit_log).where(audit_log.c.action == "mkt_contact:revealed")).one()
    assert (entry.actor, entry.target) == ("cli", people["ann"])
    assert entry.details["phi_classes"] == ["clinical", "demographic", "sensitive"]
    assert "asthma" not in json.dumps(entry.details) and "positive" not in json.dumps(entry.details)


def test_consent_history_and_an_authorization_from_json(
    cli: Cli, people: dict[str, str], services: Services, tmp_path: Path
) -> None:
    cli.ok("consent", "ann@example.net", "--purpose", "fundraising", "--action", "grant")
    now = datetime.now(UTC)
    doc = {
        **AUTHORIZATION,
        "signed_at": (now - timedelta(hours=1)).isoformat(),
        "expires_at": (now + timedelta(days=365)).isoformat(),
    }
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(doc))
    got = cli.json("authorize", "ann@example.net", "--file", str(path))
    assert got["contact_id"] == people["ann"] and got["purpose"] == "marketing"
    history = cli.json("consent-history", "ann@example.net")
    assert [e["action"] for e in history["history"]] == ["grant", "authorize"]
    assert {(c["purpose"], c["state"]) for c in history["consents"]} == {
        ("fundraising", "granted"),
        ("marketing", "authorized"),
    }
    table = cli.ok("consent-history", people["ann"]).output
    assert "authorize" in table and "ledger" in table
    assert "mkt_authorization:recorded" in actions(services)
    # Missing 164.508(c) elements: every one named, nothing recorded.
    partial = {k: v for k, v in doc.items() if k not in ("disclosed_to", "signed_by")}
    path.write_text(json.dumps(partial))
    message = cli.refused("authorize", "ann@example.net", "--file", str(path))
    assert "disclosed_to" in message and "signed_by" in message
    # The domain's own checks (an expiry in the past) come back the same way.
    path.write_text(json.dumps({**doc, "expires_at": (now - timedelta(days=1)).isoformat()}))
    assert "expires_at: is in the past" in cli.refused("authorize", "ann@example.net", "--file", str(path))
    assert len(cli.json("consent-history", "ann@example.net")["history"]) == 2


def test_consent_history_shows_the_whole_ledger_not_only_the_newest_page(
    cli: Cli, people: dict[str, str], services: Services, tenant: TenantFixture
) -> None:
    for i in range(201):  # one past the API's default page
        services.marketing.consent.change(
            tenant.id, people["ann"], purpose="fundraising", channel="email",
            action="revoke" if i % 2 else "grant", source="api", actor="test", evidence=f"change {i}",
        )  # fmt: skip
    history = cli.json("consent-history", "ann@example.net")["history"]
    assert [e["evidence"] for e in history] == [f"change {i}" for i in range(201)]


def test_authorizations_list_every_stored_element_as_a_table_and_json_and_are_audited(
    cli: Cli, people: dict[str, str], services: Services, tmp_path: Path
) -> None:
    assert "no authorizations stored" in cli.ok("authorizations", "ann@example.net").output
    now = datetime.now(UTC)
    doc = {
        **AUTHORIZATION,
        "information": "name and [bold]email[/bold]",
        "remuneration": True,
        "remuneration_statement": "PharmaCo pays the clinic",
        "signed_at": (now - timedelta(hours=1)).isoformat(),
        "expires_at": (now + timedelta(days=365)).isoformat(),
    }
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(doc))
    made = cli.json("authorize", "ann@example.net", "--file", str(path))["id"]

    [shown] = cli.json("authorizations", "ann@example.net")

    assert shown["id"] == made and shown["state"] == "active" and shown["created_by"] == "cli"
    assert {k: shown[k] for k in AUTHORIZATION if k != "statements"} == {
        k: doc[k] for k in AUTHORIZATION if k != "statements"
    }
    assert (shown["remuneration"], shown["remuneration_statement"]) == (True, "PharmaCo pays the clinic")
    table = " ".join(cli.ok("authorizations", people["ann"]).output.split())
    assert f"authorization {made}" in table and "PharmaCo pays the clinic" in table
    # Patient-signed text is printed as text, never read as Rich markup.
    assert "[bold]email[/bold]" in table and "remuneration_statement" in table
    assert actions(services).count("mkt_authorization:read") == 3


def campaign_ready(client: TestClient, keys: Keys, cli: Cli, tmp_path: Path) -> Path:
    assert client.post("/v1/templates", json=TEMPLATE, headers=keys.admin).status_code == 201
    cli.ok("segments", "save", "austin", "--rule", json.dumps(AUSTIN))
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(CAMPAIGN))
    return path


def test_a_campaign_from_json_to_audience_snapshot_stats_csv_and_a_conversion(
    cli: Cli, people: dict[str, str], client: TestClient, declared: Keys, services: Services, tmp_path: Path
) -> None:
    path = campaign_ready(client, declared, cli, tmp_path)
    made = cli.json("campaigns", "create", "--file", str(path))
    cid = made["id"]
    assert (made["status"], made["variants"][0]["version"]) == ("draft", 1)
    assert "every pre-send check passes" in cli.ok("campaigns", "checks", cid).output
    assert [c["id"] for c in cli.json("campaigns", "list")] == [cid]
    assert cli.json("campaigns", "send", cid)["status"] == "starting"
    assert "campaigns are sent once" in cli.refused("campaigns", "start", cid)
    assert "2 messages queued" in cli.ok("expand").output
    assert "sending -> paused" in cli.ok("campaigns", "pause", cid).output
    assert "paused -> sending" in cli.ok("campaigns", "resume", cid).output
    shown = cli.ok("campaigns", "show", cid).output
    assert "Flu shots" in shown and "note v1" in shown
    page = cli.json("campaigns", "audience", cid)
    assert {r["contact_id"] for r in page["data"]} == {people["ann"], people["cy"]}
    assert all(r["matched"] for r in page["data"]) and page["next_cursor"] is None
    first = cli.json("campaigns", "audience", cid, "--limit", "1")
    assert len(first["data"]) == 1 and first["next_cursor"]
    rest = cli.json("campaigns", "audience", cid, "--limit", "1", "--cursor", first["next_cursor"])
    assert {first["data"][0]["message_id"], rest["data"][0]["message_id"]} == {
        r["message_id"] for r in page["data"]
    }
    exported = cli.ok("campaigns", "audience", cid, "--csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {r["contact_id"] for r in rows} == {people["ann"], people["cy"]}
    assert "audience" in exported.stderr  # the progress bar, off stdout
    target = tmp_path / "audience.csv"
    assert "2 rows written" in cli.ok("campaigns", "audience", cid, "--csv", "-o", str(target)).output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and len(target.read_text().splitlines()) == 3

    message_id = page["data"][0]["message_id"]
    converted = cli.json("conversions", "record", message_id, "--name", "booked", "--value", "40")
    assert converted["campaign_id"] == cid
    stats = cli.json("campaigns", "stats", cid)
    assert stats["variants"]["a"]["queued"] == 2 and stats["variants"]["a"]["converted"] == 1
    figures = tmp_path / "stats.csv"
    cli.ok("campaigns", "stats", cid, "--csv", "-o", str(figures))
    assert stat.S_IMODE(figures.stat().st_mode) == 0o600
    (row,) = csv.DictReader(io.StringIO(figures.read_text()))
    assert (row["variant"], row["queued"], row["converted"]) == ("a", "2", "1")
    table = cli.ok("campaigns", "stats", cid).output
    assert "conv" in table and "unsub" in table and "click" in table
    assert "variant,queued" in cli.ok("campaigns", "stats", cid, "--csv").stdout
    done = actions(services)
    for action in ("mkt_campaign:created", "mkt_campaign:started", "mkt_conversion:recorded"):
        assert action in done


def test_a_campaign_failing_compliance_is_refused_with_each_check_named(
    cli: Cli, people: dict[str, str], client: TestClient, declared: Keys, tmp_path: Path
) -> None:
    path = campaign_ready(client, declared, cli, tmp_path)
    path.write_text(json.dumps({**CAMPAIGN, "purpose": "marketing", "from": "news@elsewhere.example"}))
    cid = cli.json("campaigns", "create", "--file", str(path))["id"]
    checks = cli("campaigns", "checks", cid)
    assert checks.exit_code == 1 and "postal_address" in checks.output and "dkim_alignment" in checks.output
    assert {c["check"] for c in json.loads(cli("campaigns", "checks", cid, "--json").stdout)["failed"]} >= {
        "dkim_alignment",
        "postal_address",
        "unsubscribe_link",
    }
    refused = cli.refused("campaigns", "send", cid)
    assert "compliance.postal_address" in refused and "compliance.dkim_alignment" in refused
    assert cli.json("campaigns", "show", cid)["status"] == "draft"


def test_caps_are_shown_and_set(cli: Cli, services: Services) -> None:
    assert "no cap" in cli.ok("caps", "show").output
    assert (
        "at most 2 per contact in 24 h"
        in cli.ok("caps", "set", "marketing", "--max-sends", "2", "--window-hours", "24").output
    )
    assert [c for c in cli.json("caps", "show") if c["max_sends"] is not None] == [
        {"purpose": "marketing", "max_sends": 2, "window_hours": 24}
    ]
    assert "max_sends" in cli.refused("caps", "set", "marketing", "--max-sends", "0", "--window-hours", "24")
    assert "purpose" in cli.refused("caps", "set", "spam", "--max-sends", "1", "--window-hours", "24")
    assert actions(services).count("mkt_cap:set") == 1


def test_journeys_are_saved_from_json_shown_woken_by_events_and_counted_per_node(
    cli: Cli, people: dict[str, str], services: Services, tmp_path: Path
) -> None:
    definition = {
        "trigger": {"type": "api_event", "event": "booked"},
        "steps": [{"wait": {"hours": 1}}, {"add_to_list": "booked"}, {"exit": {}}],
    }
    path = tmp_path / "journey.json"
    path.write_text(json.dumps(definition))
    assert "journey welcome v1 saved" in cli.ok("journeys", "save", "welcome", "--file", str(path)).output
    second = cli.json("journeys", "save", "welcome", "--file", str(path))
    assert second["version"] == 2
    listed = cli.json("journeys", "list")
    assert [(j["version"], j["active"]) for j in listed] == [(1, False), (2, True)]
    assert cli.json("journeys", "event", "booked", "ann@example.net", "--key", "appt-1") == {
        "enrolled": 1,
        "woken": 0,
    }
    assert "0 enrolled" in cli.ok("journeys", "event", "booked", "ann@example.net", "--key", "appt-1").output
    shown = cli.json("journeys", "show", "welcome")
    assert shown["id"] == second["id"] and shown["enrolled"] == 1
    assert shown["enrollments"][0]["contact_id"] == people["ann"]
    assert "not enrolling" in cli.ok("journeys", "show", listed[0]["id"]).output
    stats = cli.json("journeys", "stats", second["id"])
    assert [(n["kind"], n["at_node"]) for n in stats["nodes"]] == [
        ("wait", 1),
        ("add_to_list", 0),
        ("exit", 0),
    ]
    nodes = list(csv.DictReader(io.StringIO(cli.ok("journeys", "stats", second["id"], "--csv").stdout)))
    assert [n["kind"] for n in nodes] == ["wait", "add_to_list", "exit"]
    assert "add_to_list" in cli.ok("journeys", "stats", second["id"]).output
    assert actions(services).count("mkt_journey:saved") == 2
    assert "no contact with that email" in cli.refused("journeys", "event", "booked", "zed@example.net")
    bad = dict(definition, steps=[{"teleport": {}}])
    path.write_text(json.dumps(bad))
    assert "steps[0]" in cli.refused("journeys", "save", "welcome", "--file", str(path))


def test_hostile_input_exits_2_with_a_message_and_never_a_traceback(
    cli: Cli, people: dict[str, str], tmp_path: Path
) -> None:
    assert "not valid JSON" in cli.refused("segments", "save", "x", "--rule", "{not json")
    deep: Any = AUSTIN
    for _ in range(12):
        deep = {"not": deep}
    assert "nests deeper than" in cli.refused("segments", "save", "deep", "--rule", json.dumps(deep))
    very_deep = "[" * 100_000 + "]" * 100_000
    assert "error" in cli.refused("segments", "count", "--rule", very_deep)
    assert "one of them" in cli.refused("segments", "count")
    assert "not both" in cli.refused("segments", "count", "austin", "--rule", json.dumps(AUSTIN))
    assert "is not a declared attribute" in cli.refused(
        "segments", "save", "x", "--rule", json.dumps({"attr": "shoe_size", "op": "eq", "value": 1})
    )
    assert "rule" in cli.refused("segments", "save", "x", "--rule", "[1, 2]")  # not an object
    missing = cli.refused("segments", "count", "nope")
    assert "no segment 'nope'" in missing and "segments list" in missing
    assert "cannot read" in cli.refused("campaigns", "create", "--file", str(tmp_path / "absent.json"))
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe{\x00}\x00")  # UTF-16, not UTF-8
    assert "not UTF-8" in cli.refused("journeys", "save", "j", "--file", str(binary))
    huge = tmp_path / "huge.json"
    huge.write_text(" " * (2 << 20))
    assert "larger than" in cli.refused("campaigns", "create", "--file", str(huge))
    wrong = tmp_path / "campaign.json"
    wrong.write_text(json.dumps({**CAMPAIGN, "purpose": "sales", "extra": 1}))
    invalid = cli.refused("campaigns", "create", "--file", str(wrong))
    assert "purpose" in invalid and "extra" in invalid
    for args in (
        ("campaigns", "show", "cmp_nope"),
        ("campaigns", "stats", "cmp_nope"),
        ("campaigns", "stats", "cmp_nope", "--csv"),
        ("campaigns", "audience", "cmp_nope", "--csv"),
        ("campaigns", "checks", "cmp_nope"),
        ("campaigns", "send", "cmp_nope"),
    ):
        out = cli.refused(*args)
        assert "no campaign 'cmp_nope'" in out and "campaigns list" in out, args
    assert "no journey" in cli.refused("journeys", "stats", "jny_nope", "--csv")
    assert "no journey" in cli.refused("journeys", "show", "nope")
    assert "no contact" in cli.refused("contacts", "show", "ctc_nope")
    assert "no campaign or journey message" in cli.refused("conversions", "record", "msg_x", "--name", "b")
    assert "--csv" in cli.refused("campaigns", "stats", "cmp_nope", "-o", str(tmp_path / "x.csv"))
    assert not (tmp_path / "x.csv").exists()


def test_another_tenants_ids_are_not_found_and_nothing_of_theirs_leaks(
    cli: Cli,
    people: dict[str, str],
    client: TestClient,
    declared: Keys,
    other_tenant: TenantFixture,
    tmp_path: Path,
) -> None:
    path = campaign_ready(client, declared, cli, tmp_path)
    cid = cli.json("campaigns", "create", "--file", str(path))["id"]
    cli.ok("lists", "create", "vip")
    cli.ok("lists", "add", "vip", "ann@example.net")
    journey = tmp_path / "journey.json"
    journey.write_text(json.dumps({"trigger": {"type": "api_event", "event": "x"}, "steps": [{"exit": {}}]}))
    jid = cli.json("journeys", "save", "welcome", "--file", str(journey))["id"]
    seg_id = cli.json("segments", "list")[0]["id"]
    them = other_tenant.id
    for args in (
        ("contacts", "show", people["ann"]),
        ("contacts", "show", "ann@example.net"),
        ("consent-history", people["ann"]),
        ("authorizations", people["ann"]),
        ("segments", "count", seg_id),
        ("segments", "preview", "austin"),
        ("campaigns", "show", cid),
        ("campaigns", "audience", cid),
        ("campaigns", "stats", cid, "--csv"),
        ("campaigns", "checks", cid),
        ("campaigns", "send", cid),
        ("journeys", "show", jid),
        ("journeys", "stats", jid),
        ("lists", "add", "vip", people["bob"]),
        ("lists", "remove", "vip", people["ann"]),
        ("journeys", "event", "x", "ann@example.net"),
    ):
        out = cli.refused(*args, tenant=them)
        assert "no " in out and "ann@example.net" not in out.replace("'ann@example.net'", ""), args
        assert "Austin" not in out and "asthma" not in out, args
    assert cli.json("campaigns", "list", tenant=them) == []
    assert cli.json("segments", "list", tenant=them) == []
    assert cli.json("lists", "list", tenant=them) == []
    assert cli.json("journeys", "list", tenant=them) == []
    assert all(c["max_sends"] is None for c in cli.json("caps", "show", tenant=them))
    # Their own campaign id is still ours only: the owner sees it unchanged.
    assert cli.json("campaigns", "show", cid)["status"] == "draft"
    assert cli.json("lists", "list")[0]["members"] == 1


def test_a_large_list_add_shows_progress_and_consent_takes_an_id(
    cli: Cli, client: TestClient, declared: Keys, people: dict[str, str], tmp_path: Path
) -> None:
    rows = [{"email": f"p{i:04d}@example.net"} for i in range(1200)]
    r = client.post("/v1/marketing/contacts/batch", json={"contacts": rows}, headers=declared.admin)
    assert r.status_code == 200 and r.json()["failed"] == 0, r.text
    made = cli.json("lists", "create", "everyone")
    assert (made["name"], made["members"]) == ("everyone", 0)
    names = tmp_path / "everyone.txt"
    names.write_text("".join(f"{row['email']}\n" for row in rows))
    added = cli.ok("lists", "add", "everyone", "--from-file", str(names))
    assert "1200 added to everyone" in added.stdout and "finding contacts" in added.stderr
    too_many = tmp_path / "too-many.txt"
    too_many.write_text("".join(f"x{i}@example.net\n" for i in range(10_001)))
    assert "at most 10000" in cli.refused("lists", "add", "everyone", "--from-file", str(too_many))
    granted = cli.ok("consent", people["bob"], "--purpose", "marketing", "--action", "grant").output
    assert '"state": "granted"' in granted
    assert "no contact" in cli.refused("consent", "ctc_nope", "--purpose", "marketing", "--action", "grant")
    assert "action" in cli.refused("consent", people["bob"], "--purpose", "marketing", "--action", "maybe")
    assert cli.json("caps", "set", "treatment", "--max-sends", "3", "--window-hours", "24")["max_sends"] == 3
