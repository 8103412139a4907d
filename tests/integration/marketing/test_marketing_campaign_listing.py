"""``GET /v1/marketing/campaigns`` (paged, newest first), ``…/campaigns/{id}/stats.csv``,
``GET …/caps`` and journey (de)activation: the same keys and tenant rules as the other
campaign endpoints (a read key lists; another tenant's campaign is a 404; no key is 401)."""

import csv
import io
from typing import Any

from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer
from tests.integration.marketing.conftest import Keys
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.client import SealmailClient
from sealmail.config import Settings


def draft(client: TestClient, keys: Keys, name: str) -> str:
    body = {
        "name": name,
        "purpose": "treatment",
        "segment": "austin",
        "from": "care@clinic.example",
        "variants": [{"name": "a", "template": "note", "weight": 2}, {"name": "b", "template": "note"}],
        "quiet_start": 0,
        "quiet_end": 0,
    }
    r = client.post("/v1/marketing/campaigns", json=body, headers=keys.sender)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def setup(client: TestClient, keys: Keys) -> None:
    for i in range(3):
        body = {"email": f"p{i}@example.net", "attributes": {"city": "Austin"}}
        assert client.post("/v1/marketing/contacts", json=body, headers=keys.admin).status_code == 201
    tpl = {"name": "note", "subject": "Hello", "text": "Hello."}
    assert client.post("/v1/templates", json=tpl, headers=keys.admin).status_code == 201
    seg = {"name": "austin", "rule": {"attr": "city", "op": "eq", "value": "Austin"}}
    assert client.post("/v1/marketing/segments", json=seg, headers=keys.admin).status_code == 201


def test_campaigns_are_listed_newest_first_a_page_at_a_time(
    client: TestClient, declared: Keys, other_tenant: TenantFixture
) -> None:
    setup(client, declared)
    ids = [draft(client, declared, f"c{i}") for i in range(3)]
    first = client.get("/v1/marketing/campaigns?limit=2", headers=declared.reader)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [c["id"] for c in page["data"]] == ids[:0:-1] and page["next_cursor"] == ids[1]
    assert page["data"][0] | {"created_at": ""} == {
        "id": ids[2], "name": "c2", "purpose": "treatment", "remunerated": False, "status": "draft",
        "segment_id": page["data"][0]["segment_id"], "created_at": "", "audience": None, "sent": 0,
        "skipped": {},
    }  # fmt: skip
    rest = client.get(
        f"/v1/marketing/campaigns?limit=2&cursor={page['next_cursor']}", headers=declared.reader
    )
    assert [c["id"] for c in rest.json()["data"]] == [ids[0]] and rest.json()["next_cursor"] is None
    assert client.get("/v1/marketing/campaigns").status_code == 401
    for bad in ("limit=0", "limit=201", "cursor=" + "x" * 41):
        assert client.get(f"/v1/marketing/campaigns?{bad}", headers=declared.reader).status_code == 422
    theirs = {"Authorization": f"Bearer {other_tenant.api_key}"}
    assert client.get("/v1/marketing/campaigns", headers=theirs).json()["data"] == []


def test_the_stats_csv_has_a_row_per_variant_and_is_a_404_for_another_tenant(
    client: TestClient, declared: Keys, services: Services, other_tenant: TenantFixture
) -> None:
    setup(client, declared)
    cid = draft(client, declared, "flu")
    empty = client.get(f"/v1/marketing/campaigns/{cid}/stats.csv", headers=declared.reader)
    assert empty.status_code == 200 and empty.headers["content-type"].startswith("text/csv")
    assert empty.text.splitlines() == ["variant,queued,sent,skipped,delivered,bounced,complained,"
                                       "unsubscribed,opened,clicked,converted"]  # fmt: skip
    assert client.post(f"/v1/marketing/campaigns/{cid}/send", headers=declared.sender).status_code == 202
    services.marketing.runs.expand_due("test-expander")
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/marketing/campaigns/{cid}/stats.csv",
                                                     headers=declared.reader).text)))  # fmt: skip
    stats = client.get(f"/v1/marketing/campaigns/{cid}/stats", headers=declared.reader).json()["variants"]
    assert {r["variant"]: int(r["queued"]) for r in rows} == {k: v["queued"] for k, v in stats.items()}
    assert sum(int(r["queued"]) for r in rows) == 3
    theirs = {"Authorization": f"Bearer {other_tenant.api_key}"}
    assert client.get(f"/v1/marketing/campaigns/{cid}/stats.csv", headers=theirs).status_code == 404
    assert client.get(f"/v1/marketing/campaigns/{cid}/stats.csv").status_code == 401
    assert (
        client.get("/v1/marketing/campaigns/cmp_nope/stats.csv", headers=declared.reader).status_code == 404
    )


def test_caps_are_read_back_and_journey_versions_switched_on_and_off(
    client: TestClient, declared: Keys, other_tenant: TenantFixture
) -> None:
    caps = client.get("/v1/marketing/caps", headers=declared.reader).json()["data"]
    assert {c["purpose"] for c in caps} == {"treatment", "operations", "marketing", "fundraising"}
    assert all(c["max_sends"] is None for c in caps)
    cap = {"max_sends": 2, "window_hours": 24}
    assert client.put("/v1/marketing/caps/marketing", json=cap, headers=declared.admin).status_code == 200
    caps = client.get("/v1/marketing/caps", headers=declared.reader).json()["data"]
    assert [c for c in caps if c["purpose"] == "marketing"] == [{"purpose": "marketing", **cap}]
    journey = {
        "name": "welcome",
        "definition": {"trigger": {"type": "api_event", "event": "joined"}, "steps": [{"exit": {}}]},
    }
    v1 = client.post("/v1/marketing/journeys", json=journey, headers=declared.sender).json()["id"]
    v2 = client.post("/v1/marketing/journeys", json=journey, headers=declared.sender).json()["id"]
    on = client.post(f"/v1/marketing/journeys/{v1}/activate", headers=declared.sender)
    assert on.status_code == 200 and on.json()["active"] is True
    versions = {
        j["id"]: j["active"]
        for j in client.get("/v1/marketing/journeys", headers=declared.reader).json()["data"]
    }
    assert versions == {v1: True, v2: False}
    off = client.post(f"/v1/marketing/journeys/{v1}/deactivate", headers=declared.sender)
    assert off.status_code == 200 and off.json()["active"] is False
    assert client.post(f"/v1/marketing/journeys/{v1}/activate", headers=declared.reader).status_code == 403
    theirs = {"Authorization": f"Bearer {other_tenant.api_key}"}
    assert client.post(f"/v1/marketing/journeys/{v2}/activate", headers=theirs).status_code == 404


def test_the_cli_lists_campaigns_writes_their_stats_sets_caps_and_switches_journeys(
    settings: Settings, client: TestClient, declared: Keys
) -> None:
    env = {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}
    setup(client, declared)
    cid = draft(client, declared, "flu")
    journey = {
        "name": "welcome",
        "definition": {"trigger": {"type": "api_event", "event": "joined"}, "steps": [{"exit": {}}]},
    }
    jid = client.post("/v1/marketing/journeys", json=journey, headers=declared.sender).json()["id"]
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(sealmail_cli, ["marketing", *args], env=env)

    listed = run("campaigns", "list")
    assert listed.exit_code == 0 and cid in listed.output and "draft" in listed.output, listed.output
    stats = run("campaigns", "stats", cid, "--csv")
    assert stats.exit_code == 0 and stats.output.startswith("variant,queued,sent"), stats.output
    assert run("campaigns", "stats", "cmp_nope", "--csv").exit_code == 2
    capped = run("caps", "set", "marketing", "--max-sends", "2", "--window-hours", "48")
    assert capped.exit_code == 0 and "marketing: at most 2 per contact in 48 h" in capped.output, (
        capped.output
    )
    assert run("caps", "set", "spam", "--max-sends", "2", "--window-hours", "1").exit_code == 2
    assert "no cap" in run("caps", "show").output
    off = run("journeys", "deactivate", jid)
    assert off.exit_code == 0 and "not enrolling" in off.output, off.output
    assert "welcome version 1: enrolling" in run("journeys", "activate", jid).output
    assert run("journeys", "activate", "jny_nope").exit_code == 2
    paused = run("journeys", "pause", jid)
    assert paused.exit_code == 0 and "sends paused" in paused.output, paused.output
    assert run("journeys", "pause", jid).exit_code == 2  # paused already: a conflict, said plainly
    assert "sending" in run("journeys", "resume", jid).output


def test_the_client_lists_campaigns_reads_their_csv_and_caps_and_switches_journeys(
    services: Services, tenant: TenantFixture, client: TestClient, declared: Keys
) -> None:
    setup(client, declared)
    cid = draft(client, declared, "flu")
    with ApiServer(services) as server, SealmailClient(server.url, tenant.api_key, timeout=10) as sm:
        assert [c["id"] for c in sm.list_campaigns(limit=5)["data"]] == [cid]
        assert sm.campaign_stats_csv(cid).startswith("variant,queued,sent")
        assert {c["purpose"] for c in sm.list_caps()["data"]} == {
            "treatment",
            "operations",
            "marketing",
            "fundraising",
        }
        jid = sm.save_journey(
            "welcome", {"trigger": {"type": "api_event", "event": "j"}, "steps": [{"exit": {}}]}
        )["id"]
        assert sm.deactivate_journey(jid)["active"] is False
        assert sm.activate_journey(jid)["active"] is True
