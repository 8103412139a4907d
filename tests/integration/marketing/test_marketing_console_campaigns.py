"""The console's segment builder, campaigns, caps and journey editor over real HTTP: the
roles each action needs, CSRF on every POST, another tenant's ids are 404s, hostile names
render inert, and what the pages do is audited like the API's calls."""

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, console_server, csrf, enrol
from tests.integration.marketing.conftest import Keys, keys_for
from tests.support.waiting import wait_until

from sealmail.app import Services
from sealmail.marketing.campaigns import MAX_VARIANTS
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role

HOSTILE = "<script>alert(1)</script>\u202egnp.exe"


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


def person(console: Console, tenant: TenantFixture, role: Role) -> Person:
    email = f"{role}@{tenant.domain}"
    _, token = console.users.invite(tenant.id, email, str(role), role, actor="test")
    return enrol(console, token, email)


def token(http: httpx.Client, path: str = "/console/marketing/segments") -> str:
    return csrf(http.get(path))


def audited(services: Services, action: str) -> list[str]:
    with services.engine.connect() as conn:
        return [a for (a,) in conn.execute(sa.select(audit_log.c.actor).where(audit_log.c.action == action))]


def contacts(client: TestClient, keys: Keys) -> None:
    for i, (city, diagnosis) in enumerate([("Austin", "asthma"), ("Austin", "flu"), ("Boston", "asthma")]):
        body = {
            "email": f"p{i}@example.net",
            "attributes": {"city": city, "diagnosis": diagnosis, "age": 30 + i},
        }
        assert client.post("/v1/marketing/contacts", json=body, headers=keys.admin).status_code == 201


def build(http: httpx.Client, **fields: str) -> httpx.Response:
    return http.post("/console/marketing/segments/build", data={"csrf": token(http), **fields})


def test_the_builder_adds_conditions_counts_previews_and_saves(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    contacts(client, declared)
    sender = person(console, tenant, Role.SENDER).http
    first = build(sender, do="add", kind="attr", attr="city", op="eq", value="Austin", combine="all")
    assert first.status_code == 200, first.text
    assert re.search(r"<strong>2</strong> contacts match now", first.text)
    assert "attr:city:eq" in first.text and "p0@example.net" in first.text
    shown = re.search(r'<textarea id="seg-rule"[^>]*>([^<]*)</textarea>', first.text, re.S)
    assert shown
    rule = json.loads(html.unescape(shown[1]))
    assert rule == {"attr": "city", "op": "eq", "value": "Austin"}
    # A second condition, negated, on a number attribute: an all-group of the two.
    second = build(
        sender,
        do="add",
        rule=json.dumps(rule),
        kind="attr",
        attr="age",
        op="gt",
        value="30",
        combine="all",
        negate="on",
    )
    assert re.search(r"<strong>1</strong> contacts match now", second.text), second.text
    # A sender may not segment on clinical data: refused with the classes named, in the page.
    clinical = build(
        sender, do="preview", rule=json.dumps({"attr": "diagnosis", "op": "eq", "value": "asthma"})
    )
    assert clinical.status_code == 403 and "clinical" in clinical.text and 'id="refused"' in clinical.text
    # Depth and size limits come back as page errors (422), never a 500.
    deep: Any = {"attr": "city", "op": "exists"}
    for _ in range(10):
        deep = {"not": deep}
    too_deep = build(sender, do="preview", rule=json.dumps(deep))
    assert too_deep.status_code == 422 and "nests deeper" in too_deep.text
    wide = build(sender, do="preview", rule=json.dumps({"any": [{"attr": "city", "op": "exists"}] * 60}))
    assert wide.status_code == 422 and "at most 50 conditions" in wide.text
    for bad in ("{not json", "[]", json.dumps({"attr": "nope", "op": "eq", "value": 1}), "1" * 70000):
        r = build(sender, do="preview", rule=bad)
        assert r.status_code == 422, (bad[:40], r.status_code)
    saved = build(sender, do="save", name=HOSTILE, rule=json.dumps(rule))
    assert saved.status_code == 200 and 'id="saved"' in saved.text
    assert "<script>alert(1)" not in saved.text and "&lt;script&gt;" in saved.text
    assert "<bdi>&lt;script&gt;alert(1)&lt;/script&gt;\u202egnp.exe</bdi>" in saved.text
    # Where <bdi> cannot go (an <option>), the override is made visible instead.
    offered = sender.get("/console/marketing/campaigns/new").text
    assert "&lt;/script&gt;\ufffdgnp.exe v1</option>" in offered and "\u202e" not in offered
    (actor,) = audited(services, "mkt_segment:saved")
    assert actor.startswith("user:")
    assert len(audited(services, "mkt_segment:evaluated")) == 3
    # A compliance officer counts clinical rules, but may not save (no messages.compose).
    officer = person(console, tenant, Role.COMPLIANCE).http
    ok = build(officer, do="preview", rule=json.dumps({"attr": "diagnosis", "op": "eq", "value": "asthma"}))
    assert ok.status_code == 200 and "clinical" in ok.text and re.search(r"<strong>2</strong>", ok.text)
    assert build(officer, do="save", name="x", rule=json.dumps(rule)).status_code == 403
    # A saved clinical segment opens in the builder for the officer, not for the sender (its
    # rule holds the diagnosis).
    seg = client.post(
        "/v1/marketing/segments",
        json={"name": "asthma", "rule": {"attr": "diagnosis", "op": "eq", "value": "asthma"}},
        headers=declared.admin,
    ).json()
    assert officer.get(f"/console/marketing/segments/{seg['id']}/edit").status_code == 200
    refused = sender.get(f"/console/marketing/segments/{seg['id']}/edit")
    assert refused.status_code == 403 and "asthma" not in refused.text
    # CSRF: a forged token is refused before anything runs.
    forged = sender.post(
        "/console/marketing/segments/build", data={"csrf": "0" * 64, "do": "preview", "rule": "{}"}
    )
    assert forged.status_code == 403


def make_campaign(http: httpx.Client, segment_id: str, **over: str) -> httpx.Response:
    data = {
        "csrf": token(http, "/console/marketing/campaigns/new"),
        "name": "Flu shots",
        "purpose": "treatment",
        "segment": segment_id,
        "from": "care@clinic.example",
        "quiet_start": "0",
        "quiet_end": "0",
        "v0_name": "a",
        "v0_template": "reminder@1",
        "v0_weight": "3",
        "v1_name": "b",
        "v1_template": "reminder@2",
        "v1_weight": "1",
        **over,
    }
    return http.post("/console/marketing/campaigns/new", data=data)


def test_campaigns_are_created_checked_started_and_reported(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    contacts(client, declared)
    tpl = {"name": "reminder", "subject": "Flu shots", "text": "Book your flu shot."}
    assert client.post("/v1/templates", json=tpl, headers=declared.admin).status_code == 201
    tpl2 = {"subject": "Flu shots!", "text": "Book your flu shot today."}
    assert client.put("/v1/templates/reminder", json=tpl2, headers=declared.admin).status_code in (200, 201)
    seg = client.post(
        "/v1/marketing/segments",
        json={"name": "austin", "rule": {"attr": "city", "op": "eq", "value": "Austin"}},
        headers=declared.admin,
    ).json()
    sender = person(console, tenant, Role.SENDER).http
    made = make_campaign(sender, seg["id"])
    assert made.status_code == 303, made.text
    page_path = made.headers["location"]
    campaign_id = page_path.rsplit("/", 1)[1]
    page = sender.get(page_path)
    assert page.status_code == 200 and 'id="checks-passed"' in page.text
    assert "reminder</bdi> version 1, weight 3" in page.text and "version 2, weight 1" in page.text
    started = sender.post(f"{page_path}/start", data={"csrf": csrf(page)})
    assert started.status_code == 303
    again = sender.post(f"{page_path}/start", data={"csrf": csrf(page)})
    assert again.status_code == 409 and "sent once" in again.text
    # The console's own expander may hold the job's lease: the page shows the figures once
    # whichever expander took it has finished.
    services.marketing.runs.expand_due("test-expander")
    wait_until(lambda: 'role="img"' in sender.get(page_path).text, 30, "the campaign was never expanded")
    shown = sender.get(page_path)
    # Two contacts, variants weighted 3:1 by a hash of random ids: both get "b" one run in 16.
    assert 'role="img"' in shown.text and re.search(r'<th scope="row"><bdi>[ab]</bdi></th>', shown.text)
    audience = sender.get(f"{page_path}/audience")
    assert audience.status_code == 200 and audience.text.count("attr:city:eq") == 2
    csv = sender.get(f"{page_path}/stats.csv")
    assert csv.status_code == 200 and csv.text.startswith("variant,queued,sent")
    assert sorted(line.split(",")[0] for line in csv.text.splitlines()[1:]) in (["a", "b"], ["a"], ["b"])
    listed = sender.get("/console/marketing/campaigns")
    assert f"/marketing/campaigns/{campaign_id}" in listed.text
    assert audited(services, "mkt_campaign:started") and audited(services, "mkt_campaign:created")[
        0
    ].startswith("user:")
    # Bad input is a page error: no template, a weight that is not a number, an unknown purpose.
    bad = make_campaign(sender, seg["id"], v0_weight="lots", purpose="spam", name=HOSTILE)
    assert bad.status_code == 422 and "purpose" in bad.text and "weight" in bad.text
    assert "<script>alert(1)" not in bad.text
    # The compliance officer sees it all but may not create or start (no messages.compose).
    officer = person(console, tenant, Role.COMPLIANCE).http
    assert officer.get(page_path).status_code == 200
    assert officer.get("/console/marketing/campaigns/new").status_code == 403
    assert officer.post(f"{page_path}/start", data={"csrf": token(officer, page_path)}).status_code == 403
    assert sender.post(f"{page_path}/start", data={"csrf": "0" * 64}).status_code == 403


def test_the_form_offers_and_saves_as_many_variants_as_the_api_allows(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys
) -> None:
    tpl = {"name": "reminder", "subject": "Flu shots", "text": "Book your flu shot."}
    assert client.post("/v1/templates", json=tpl, headers=declared.admin).status_code == 201
    rule = {"attr": "city", "op": "eq", "value": "Austin"}
    seg = client.post(
        "/v1/marketing/segments", json={"name": "austin", "rule": rule}, headers=declared.admin
    ).json()
    sender = person(console, tenant, Role.SENDER).http
    form = sender.get("/console/marketing/campaigns/new").text
    rows = set(re.findall(r'name="v(\d+)_template"', form))
    assert rows == {str(i) for i in range(MAX_VARIANTS)} and MAX_VARIANTS > 3
    # Every field of the form, as a browser posts it: each row filled in.
    fields = {
        f"v{i}_{k}": v
        for i in range(MAX_VARIANTS)
        for k, v in (("name", f"arm{i}"), ("template", "reminder@1"), ("weight", str(i + 1)))
    }
    made = make_campaign(sender, seg["id"], send_at="", **fields)
    assert made.status_code == 303, made.text
    campaign_id = made.headers["location"].rsplit("/", 1)[1]
    got = client.get(f"/v1/marketing/campaigns/{campaign_id}", headers=declared.admin).json()
    assert [(v["name"], v["weight"]) for v in got["variants"]] == [
        (f"arm{i}", i + 1) for i in range(MAX_VARIANTS)
    ]
    # A flood of fields is still refused before any is read.
    flood = make_campaign(sender, seg["id"], **fields, **{f"x{i}": "1" for i in range(20)})
    assert flood.status_code == 400


def test_another_tenants_ids_are_not_found(
    console: Console,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    client: TestClient,
    declared: Keys,
    services: Services,
) -> None:
    theirs = keys_for(services, other_tenant)
    assert (
        client.post(
            "/v1/marketing/attributes",
            json={"name": "city", "type": "text", "phi_class": "demographic"},
            headers=theirs.admin,
        ).status_code
        == 201
    )
    tpl = {"name": "reminder", "subject": "Hi", "text": "Hi."}
    assert client.post("/v1/templates", json=tpl, headers=theirs.admin).status_code == 201
    seg = client.post(
        "/v1/marketing/segments",
        json={"name": "all", "rule": {"attr": "city", "op": "exists"}},
        headers=theirs.admin,
    ).json()
    body = {"name": "x", "purpose": "treatment", "segment": "all", "from": "a@other.example",
            "variants": [{"name": "a", "template": "reminder"}]}  # fmt: skip
    camp = client.post("/v1/marketing/campaigns", json=body, headers=theirs.admin).json()
    journey = {
        "name": "j",
        "definition": {"trigger": {"type": "api_event", "event": "x"}, "steps": [{"exit": {}}]},
    }
    jid = client.post("/v1/marketing/journeys", json=journey, headers=theirs.admin).json()["id"]
    owner = person(console, tenant, Role.OWNER).http
    for path in (
        f"/console/marketing/campaigns/{camp['id']}",
        f"/console/marketing/campaigns/{camp['id']}/audience",
        f"/console/marketing/campaigns/{camp['id']}/stats.csv",
        f"/console/marketing/segments/{seg['id']}/edit",
        f"/console/marketing/journeys/{jid}/steps",
        f"/console/marketing/journeys?start={jid}",
    ):
        assert owner.get(path).status_code == 404, path
    t = token(owner)
    for path in (
        f"/console/marketing/campaigns/{camp['id']}/start",
        f"/console/marketing/journeys/{jid}/deactivate",
    ):
        assert owner.post(path, data={"csrf": t}).status_code == 404, path
    made = make_campaign(owner, seg["id"])  # their segment id: not found here
    assert made.status_code in (404, 422)
    # The API: the same rules for the list and the CSV.
    assert (
        client.get(f"/v1/marketing/campaigns/{camp['id']}/stats.csv", headers=declared.admin).status_code
        == 404
    )
    mine = client.get("/v1/marketing/campaigns", headers=declared.reader).json()
    assert mine == {"data": [], "next_cursor": None}
    assert client.get("/v1/marketing/campaigns", headers=theirs.reader).json()["data"][0]["id"] == camp["id"]


def test_caps_are_shown_to_every_marketing_role_and_changed_by_administrators(
    console: Console, tenant: TenantFixture, services: Services
) -> None:
    sender = person(console, tenant, Role.SENDER).http
    page = sender.get("/console/marketing/caps")
    assert page.status_code == 200 and "no cap" in page.text and "Save the marketing cap" not in page.text
    assert (
        sender.post(
            "/console/marketing/caps/marketing",
            data={"csrf": csrf(page), "max_sends": "2", "window_hours": "24"},
        ).status_code
        == 403
    )
    admin = person(console, tenant, Role.ADMINISTRATOR).http
    t = token(admin, "/console/marketing/caps")
    done = admin.post(
        "/console/marketing/caps/marketing", data={"csrf": t, "max_sends": "2", "window_hours": "24"}
    )
    assert done.status_code == 303
    shown = admin.get("/console/marketing/caps").text
    assert re.search(r"<th scope=\"row\">marketing</th><td>2</td><td>24</td>", shown)
    for data in ({"max_sends": "0", "window_hours": "24"}, {"max_sends": "x", "window_hours": "99999"}):
        assert admin.post("/console/marketing/caps/marketing", data={"csrf": t, **data}).status_code == 422
    assert (
        admin.post(
            "/console/marketing/caps/<b>", data={"csrf": t, "max_sends": "1", "window_hours": "1"}
        ).status_code
        == 422
    )
    assert (
        admin.post(
            "/console/marketing/caps/marketing",
            data={"csrf": "0" * 64, "max_sends": "1", "window_hours": "1"},
        ).status_code
        == 403
    )
    assert len(audited(services, "mkt_cap:set")) == 1


def test_journeys_are_saved_from_json_viewed_and_switched_on_and_off(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    sender = person(console, tenant, Role.SENDER).http
    t = token(sender, "/console/marketing/journeys")
    definition = {
        "trigger": {"type": "api_event", "event": "booked"},
        "steps": [{"wait": {"hours": 2}}, {"exit": {}}],
    }
    saved = sender.post(
        "/console/marketing/journeys", data={"csrf": t, "name": HOSTILE, "definition": json.dumps(definition)}
    )
    assert saved.status_code == 303, saved.text
    steps_path = saved.headers["location"]
    steps = sender.get(steps_path)
    assert steps.status_code == 200 and "Enrolling new contacts" in steps.text and "wait" in steps.text
    assert "<script>alert(1)" not in steps.text and "<bdi>&lt;script&gt;" in steps.text
    assert "<title>Journey &lt;script&gt;alert(1)&lt;/script&gt;\ufffdgnp.exe" in steps.text
    again = sender.get(f"/console/marketing/journeys?start={steps_path.split('/')[-2]}")
    assert again.status_code == 200 and "&#34;hours&#34;: 2" in again.text
    off = sender.post(f"{steps_path.removesuffix('/steps')}/deactivate", data={"csrf": csrf(steps)})
    assert off.status_code == 303 and "Not enrolling" in sender.get(steps_path).text
    on = sender.post(f"{steps_path.removesuffix('/steps')}/activate", data={"csrf": csrf(steps)})
    assert on.status_code == 303 and "Enrolling new contacts" in sender.get(steps_path).text
    # Sends paused and resumed from the page; a second pause is a conflict said in the page.
    base = steps_path.removesuffix("/steps")
    paused = sender.post(f"{base}/pause", data={"csrf": csrf(steps)})
    assert paused.status_code == 303 and "Sends paused (user)" in sender.get(steps_path).text
    twice = sender.post(f"{base}/pause", data={"csrf": csrf(steps)})
    assert twice.status_code == 409 and "already paused" in twice.text
    resumed = sender.post(f"{base}/resume", data={"csrf": csrf(steps)})
    assert resumed.status_code == 303 and "Sending." in sender.get(steps_path).text
    assert sender.post(f"{base}/pause", data={"csrf": "0" * 64}).status_code == 403
    # Validator errors land in the page; a bad jump, not JSON, not an object.
    trigger = {"type": "api_event", "event": "b"}
    city = {"attr": "city", "op": "exists"}
    backwards = {"trigger": trigger, "steps": [{"exit": {}}, {"condition": {"rule": city, "else": 0}}]}
    for text, words in ((json.dumps(backwards), "later step"), ("{", "not JSON"), ("[1]", "JSON object")):
        r = sender.post("/console/marketing/journeys", data={"csrf": t, "name": "j", "definition": text})
        assert r.status_code == 422 and words in r.text, (text, r.text[-2000:])
    # A condition on clinical data: the sender's role may not.
    clinical = {"trigger": trigger, "steps": [{"condition": {"rule": {"attr": "diagnosis", "op": "exists"}}}]}
    r = sender.post(
        "/console/marketing/journeys", data={"csrf": t, "name": "j", "definition": json.dumps(clinical)}
    )
    assert r.status_code == 403 and "clinical" in r.text
    listed = sender.get("/console/marketing/journeys")
    assert listed.text.count("/steps") == 1 and "Figures" in listed.text
    assert audited(services, "mkt_journey:deactivated") and audited(services, "mkt_journey:activated")
    officer = person(console, tenant, Role.COMPLIANCE).http
    assert (
        officer.post(
            "/console/marketing/journeys",
            data={"csrf": token(officer, "/console/marketing/journeys"), "name": "j", "definition": "{}"},
        ).status_code
        == 403
    )
    assert (
        sender.post(
            "/console/marketing/journeys", data={"csrf": "0" * 64, "name": "j", "definition": "{}"}
        ).status_code
        == 403
    )
    support = person(console, tenant, Role.SUPPORT).http
    for path in (
        "/console/marketing/journeys",
        "/console/marketing/segments",
        "/console/marketing/campaigns",
        "/console/marketing/caps",
    ):
        assert support.get(path).status_code == 403
