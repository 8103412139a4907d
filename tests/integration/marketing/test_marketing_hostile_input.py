"""Hostile input over the marketing API on SQLite and PostgreSQL: NUL in a body, a path or
a query, numbers past a double's range, and ids of nothing this tenant owns are 4xx
problems (in the console, a page saying so) — never a driver error (a 500) and never
anything stored."""

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console
from tests.integration.marketing.conftest import Keys, keys_for
from tests.integration.marketing.test_marketing_campaign_listing import setup
from tests.integration.marketing.test_marketing_console_campaigns import console, person, token
from tests.integration.marketing.test_marketing_import_background import finished

from sealmail.app import Services
from sealmail.marketing import imports
from sealmail.marketing.tables import (
    mkt_consent_events,
    mkt_contacts,
    mkt_imports,
    mkt_journeys,
    mkt_lists,
    mkt_segments,
)
from sealmail.users.roles import Role

__all__ = ["console"]

P = "/v1/marketing"


def assert_problem(r: Any, status: int) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"


def rows(services: Services, table: sa.Table) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_nul_in_a_body_path_or_query_is_a_4xx_problem_and_nothing_is_stored(
    client: TestClient, declared: Keys, services: Services
) -> None:
    h = declared.admin
    cid = client.post(f"{P}/contacts", json={"email": "n@example.net"}, headers=h).json()["id"]
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("/contacts", {"email": "m@example.net", "attributes": {"city": "Aus\x00tin"}}),
        ("/lists", {"name": "vip\x00"}),
        ("/segments", {"name": "s\x00", "rule": {"attr": "age", "op": "exists"}}),
        ("/segments/preview", {"rule": {"list": "vip\x00"}}),
        ("/segments/preview", {"rule": {"any": [{"contact": "email_domain", "op": "eq", "value": "x\x00"}]}}),
        (f"/contacts/{cid}/consent", {"purpose": "marketing", "action": "grant", "evidence": "form\x00"}),
        ("/journeys/events", {"event": "booked\x00", "email": "n@example.net"}),
        ("/conversions", {"message_id": "msg\x00", "name": "booked"}),
    ]
    for path, body in bodies:
        r = client.post(P + path, json=body, headers=h)
        assert_problem(r, 422)
        assert "must not contain NUL" in r.text, path
    for path in ("/contacts/c%00", "/segments/s%00/preview", "/campaigns/c%00", "/contacts?cursor=%00"):
        assert_problem(client.get(P + path, headers=h), 400)
    assert_problem(client.post(f"{P}/lists/vip%00/members", json={"contact_ids": [cid]}, headers=h), 400)
    assert (rows(services, mkt_contacts), rows(services, mkt_lists), rows(services, mkt_segments)) == (
        1,
        0,
        0,
    )
    assert rows(services, mkt_consent_events) == 0


def test_a_number_past_a_doubles_range_is_a_422_in_a_contact_and_a_rule(
    client: TestClient, declared: Keys, services: Services
) -> None:
    h = {**declared.admin, "Content-Type": "application/json"}
    huge = b"1" + b"0" * 400
    r = client.post(
        f"{P}/contacts", content=b'{"email":"b@example.net","attributes":{"age":' + huge + b"}}", headers=h
    )
    assert_problem(r, 422)
    assert r.json()["errors"] == [{"field": "attributes.age", "message": "must be a finite number"}]
    r = client.post(
        f"{P}/segments/preview", content=b'{"rule":{"attr":"age","op":"gt","value":' + huge + b"}}", headers=h
    )
    assert_problem(r, 422)
    assert rows(services, mkt_contacts) == 0


def test_a_variant_version_past_an_integer_columns_range_is_a_422(
    client: TestClient, declared: Keys, services: Services
) -> None:
    # 2**31 reached PostgreSQL's INTEGER and 2**63 SQLite's as a driver error (a 500).
    setup(client, declared)
    for version in (2**31, 2**63):
        body = {
            "name": "n", "purpose": "treatment", "segment": "austin", "from": "care@clinic.example",
            "variants": [{"name": "a", "template": "note", "version": version}],
        }  # fmt: skip
        r = client.post(f"{P}/campaigns", json=body, headers=declared.sender)
        assert_problem(r, 422)
        assert r.json()["errors"][0]["field"] == "variants[0].version"
    assert client.get(f"{P}/campaigns", headers=declared.reader).json()["data"] == []


def test_a_csv_line_longer_than_any_valid_row_is_refused_and_nothing_is_stored(
    client: TestClient, declared: Keys, services: Services
) -> None:
    body = b"email,city\nok@example.net,Austin\nh@example.net," + b"x" * (4 << 20)
    r = client.post(
        f"{P}/contacts/import", content=body, headers={**declared.sender, "Content-Type": "text/csv"}
    )
    assert_problem(r, 422)
    assert "longer than" in r.text
    assert rows(services, mkt_contacts) == 0


def test_a_header_the_csv_parser_refuses_is_a_422_naming_row_1_in_the_foreground_and_background(
    client: TestClient, declared: Keys, services: Services
) -> None:
    # The header was read outside the parser's guard: a csv.Error there was a 500, and a
    # background import ended failed with nothing in its report to say why.
    h = {**declared.sender, "Content-Type": "text/csv"}
    for body in (b"email,city\rcr@example.net,Austin\r", b"email," + b"c" * 3000 + b"\nx@example.net,y\n"):
        r = client.post(f"{P}/contacts/import", content=body, headers=h)
        assert_problem(r, 422)
        assert r.json()["errors"][0]["field"] == "row 1"
        started = client.post(f"{P}/contacts/import?background=true", content=body, headers=h)
        assert started.status_code == 202, started.text
        done = finished(client, declared, started.json()["id"])
        assert done["status"] == "failed"
        assert [(e["row"], e["field"]) for e in done["errors"]] == [(1, "row 1")]
    assert rows(services, mkt_contacts) == 0


def test_a_journey_value_the_runner_could_not_read_is_a_422_on_save_and_nothing_is_stored(
    client: TestClient, declared: Keys, services: Services
) -> None:
    # A 400-digit number of hours was a 500 (float() overflowed); the others were stored and
    # failed the step for every contact that reached it, at every run of the worker.
    setup(client, declared)
    h = {**declared.admin, "Content-Type": "application/json"}
    big = "1" + "0" * 400
    send = '{"send":{"template":"note","purpose":"treatment","from":"care@clinic.example",EXTRA}}'
    cases = [
        ('{"wait":{"hours":BIG}}', "steps[0].wait.hours"),
        ('{"wait":{"hours":"5"}}', "steps[0].wait.hours"),
        ('{"wait_until":{"event":"e","hours":BIG}}', "steps[0].wait_until.hours"),
        (send.replace("EXTRA", '"version":9223372036854775808'), "steps[0].send.version"),
        (send.replace("EXTRA", '"quiet_start":"x"'), "steps[0].send.quiet_start"),
        (send.replace("EXTRA", '"quiet_end":99'), "steps[0].send.quiet_end"),
        (send.replace("EXTRA", '"remunerated":"no"'), "steps[0].send.remunerated"),
        ('{"add_to_list":"' + "l" * 101 + '"}', "steps[0].add_to_list"),
        ('{"add_to_list":{"name":"vip"}}', "steps[0].add_to_list"),
        ('{"update_attribute":{"name":"age","value":"old"}}', "steps[0].update_attribute.value"),
        ('{"update_attribute":{"name":"age"}}', "steps[0].update_attribute.value"),
        ('{"update_attribute":{"name":"age","value":BIG}}', "steps[0].update_attribute.value"),
        ('{"wait":{"hours":1,"note":"' + "x" * 100_000 + '"}}', "steps[0].wait"),
        ('{"exit":[]}', "steps[0].exit"),
    ]
    trigger = '{"type":"api_event","event":"x"}'
    for i, (step, field) in enumerate(cases):
        body = f'{{"name":"j{i}","definition":{{"trigger":{trigger},"steps":[{step.replace("BIG", big)}]}}}}'
        r = client.post(f"{P}/journeys", content=body.encode(), headers=h)
        assert_problem(r, 422)
        assert r.json()["errors"][0]["field"] == field, (step[:80], r.text[:300])
    for definition, field in (
        ('{"trigger":{"type":"api_event","event":"x","key":"k"},"steps":[{"exit":{}}]}', "trigger"),
        (f'{{"trigger":{trigger},"steps":[{{"exit":{{}}}}],"x":"' + "x" * 1000 + '"}', "definition"),
    ):
        r = client.post(
            f"{P}/journeys", content=b'{"name":"k","definition":%s}' % definition.encode(), headers=h
        )
        assert_problem(r, 422)
        assert r.json()["errors"][0]["field"] == field
    assert rows(services, mkt_journeys) == 0


def test_a_rule_whose_sql_would_explode_is_a_422_and_the_largest_allowed_one_runs(
    client: TestClient, declared: Keys, services: Services
) -> None:
    # Fifty leaves of 200 email domains were 10,000 LIKEs a contact: past SQLite's expression
    # depth (a 500 on preview, a stored segment no campaign could expand), seconds on PostgreSQL.
    h = declared.admin
    client.post(f"{P}/contacts", json={"email": "a@d7.example"}, headers=h)

    def domains(leaves: int, each: int) -> dict[str, Any]:
        values = [[f"d{i * each + j}.example" for j in range(each)] for i in range(leaves)]
        return {"any": [{"contact": "email_domain", "op": "in", "value": v} for v in values]}

    cities = {
        "any": [{"attr": "city", "op": "in", "value": [f"c{i}-{j}" for j in range(200)]} for i in range(6)]
    }
    for rule, field in (
        (domains(50, 200), "rule.any[1].value"),
        (domains(3, 100), "rule.any[2].value"),
        (cities, "rule.any[5].value"),
    ):
        for path in ("/segments/preview", "/segments"):
            r = client.post(
                P + path,
                json={"name": "big", "rule": rule} if path == "/segments" else {"rule": rule},
                headers=h,
            )
            assert_problem(r, 422)
            assert r.json()["errors"][0]["field"] == field
    assert rows(services, mkt_segments) == 0
    r = client.post(f"{P}/segments/preview", json={"rule": domains(1, 200)}, headers=h)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["count"] == 1


def test_an_unsubscribe_form_the_parser_refuses_is_a_400_page_not_fastapis_json(client: TestClient) -> None:
    # The public /u and /t apps had no handlers for the framework's refusals: FastAPI's bare
    # {"detail": ...} JSON.  They are links people open, so the answer is the link's own page.
    many = "&".join(f"f{i}=1" for i in range(50)).encode()
    cases = [
        ("application/x-www-form-urlencoded", many),
        ("multipart/form-data", b"no boundary"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nv\r\n--b--\r\n',
        ),
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=" + b"x" * (2 << 20)),
    ]
    for ctype, body in cases:
        for path in ("/u/" + "A" * 40, "/u/" + "A" * 40 + "/preferences"):
            r = client.post(path, content=body, headers={"Content-Type": ctype})
            assert r.status_code == 400 and r.headers["content-type"].startswith("text/html"), r.text[:200]
            assert "could not be read" in r.text


def test_a_zone_that_is_the_servers_own_setting_is_refused_in_a_contact_and_an_import(
    client: TestClient, declared: Keys, services: Services
) -> None:
    # "localtime" is a file in the zone directory (a link to /etc/localtime), not an IANA zone:
    # the contact kept the hours of whichever machine ran the sweep or the claim.
    for tz in ("localtime", "posixrules"):
        r = client.post(f"{P}/contacts", json={"email": "z@example.net", "tz": tz}, headers=declared.sender)
        assert_problem(r, 422)
        assert r.json()["errors"][0]["field"] == "tz"
    body = b"email,tz\nz@example.net,localtime\n"
    r = client.post(
        f"{P}/contacts/import", content=body, headers={**declared.sender, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json()["failed"] == 1, r.text[:300]
    assert rows(services, mkt_contacts) == 0


def test_a_tenant_with_its_cap_of_background_imports_running_gets_a_429_and_others_do_not(
    client: TestClient, declared: Keys, services: Services, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    # Each queued import held its upload (up to 512 MB) on disk until the shared pool of two
    # workers reached it: one tenant could queue until the disk filled, others waited behind.
    now = datetime.now(UTC)
    running = {"status": "processing", "rows": 0, "created": 0, "updated": 0, "failed": 0, "created_by": "t"}
    with services.engine.begin() as conn:
        for i, moved in enumerate((now, now, now - imports.STALLED_AFTER * 2)):
            conn.execute(
                sa.insert(mkt_imports).values(
                    id=f"imp_running{i}", tenant_id=tenant.id, progress_at=moved, created_at=moved, **running
                )
            )
    h = {**declared.sender, "Content-Type": "text/csv"}
    r = client.post(f"{P}/contacts/import?background=true", content=b"email\na@example.net\n", headers=h)
    assert_problem(r, 429)
    assert r.headers["retry-after"] == "30"
    assert rows(services, mkt_imports) == 3 and rows(services, mkt_contacts) == 0
    other = {**keys_for(services, other_tenant).sender, "Content-Type": "text/csv"}
    started = client.post(
        f"{P}/contacts/import?background=true", content=b"email\nb@example.net\n", headers=other
    )
    assert started.status_code == 202, started.text
    assert finished(client, keys_for(services, other_tenant), started.json()["id"])["status"] == "completed"


def test_terminal_escape_sequences_are_refused_in_a_body_and_an_import(
    client: TestClient, declared: Keys, services: Services
) -> None:
    # They were stored and came back raw: an ESC sequence retitled or cleared the operator's
    # terminal through `sealmail marketing contacts show` (rich passes ESC through).
    h = declared.admin
    for city in ("x\x1b]0;pwned\x07", "\x9b31m", "a\x08b", "\x7f"):
        r = client.post(
            f"{P}/contacts", json={"email": "c@example.net", "attributes": {"city": city}}, headers=h
        )
        assert_problem(r, 422)
        assert "control characters" in r.text
    assert_problem(client.post(f"{P}/lists", json={"name": "vip\x1b[2J"}, headers=h), 422)
    body = b"email,city\nc@example.net,x\x1b[2J\nd@example.net,\x1b]52;c;aGk=\x07\n"
    r = client.post(
        f"{P}/contacts/import", content=body, headers={**declared.sender, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json()["failed"] == 2, r.text[:300]
    assert rows(services, mkt_contacts) == 0 and rows(services, mkt_lists) == 0
    # Right-to-left text (its marks and overrides are shown safely where displayed), tabs and
    # newlines are text as before.
    ok = {"email": "e@example.net", "attributes": {"city": "\u200fתל אביב\u202e\tA\nB"}}
    assert client.post(f"{P}/contacts", json=ok, headers=h).status_code == 201


def test_the_audience_and_enrollments_of_a_campaign_or_journey_not_this_tenants_are_404(
    client: TestClient, declared: Keys
) -> None:
    for path in (
        "/campaigns/cmp_01M9288A7M1PJYB7ZY4FFB30F8/audience",
        "/journeys/jrn_01M9288A7M1PJYB7ZY4FFB30F8/enrollments",
    ):
        assert_problem(client.get(P + path, headers=declared.reader), 404)


def test_a_journeys_enrollments_come_a_page_at_a_time(client: TestClient, declared: Keys) -> None:
    h = declared.admin
    definition = {"trigger": {"type": "api_event", "event": "booked"}, "steps": [{"wait": {"hours": 2}}]}
    jid = client.post(f"{P}/journeys", json={"name": "j", "definition": definition}, headers=h).json()["id"]
    for i in range(3):
        client.post(f"{P}/contacts", json={"email": f"e{i}@example.net"}, headers=h)
        event = {"event": "booked", "email": f"e{i}@example.net"}
        assert client.post(f"{P}/journeys/events", json=event, headers=h).json()["enrolled"] == 1
    url = f"{P}/journeys/{jid}/enrollments"
    first = client.get(url, params={"limit": 2}, headers=h).json()
    assert len(first["data"]) == 2 and first["next_cursor"] == first["data"][1]["id"]
    rest = client.get(url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=h).json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    ids = [e["id"] for e in first["data"] + rest["data"]]
    assert len(set(ids)) == 3
    assert_problem(client.get(url, params={"limit": 1001}, headers=h), 422)


def test_nul_in_a_console_form_or_its_json_is_refused_in_the_page_and_nothing_is_stored(
    console: Console, tenant: TenantFixture, declared: Keys, services: Services
) -> None:
    owner = person(console, tenant, Role.OWNER).http
    t = token(owner)
    journey = {"trigger": {"type": "api_event", "event": "b\x00"}, "steps": [{"exit": {}}]}
    for path, data, status in (
        ("/console/marketing/lists", {"name": "vip\x00"}, 400),
        ("/console/marketing/journeys", {"name": "j", "definition": json.dumps(journey)}, 422),
        (
            "/console/marketing/segments/build",
            {"name": "s", "rule": '{"list": "a\\u0000"}', "action": "count"},
            422,
        ),
    ):
        r = owner.post(path, data={"csrf": t, **data})
        assert r.status_code == status, (path, r.status_code)
        assert "NUL" in r.text, path
    assert (rows(services, mkt_lists), rows(services, mkt_journeys)) == (0, 0)
