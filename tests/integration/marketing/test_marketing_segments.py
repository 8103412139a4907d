"""Segments over the API on SQLite and PostgreSQL: typed rules compiled to bound SQL give
exactly the contacts a plain Python filter gives; PHI classes gate who may use a segment;
hostile names and values are refused or matched literally; depth and size are bounded."""

import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys

from sealmail.app import Services
from sealmail.ids import new_id
from sealmail.marketing.tables import mkt_contacts, mkt_sends
from sealmail.store import db
from sealmail.store.tables import audit_log, events

TODAY = datetime.now(UTC).date()
PEOPLE: list[dict[str, Any]] = [
    {"email": f"p{i}@{'example.net' if i % 3 else 'partner.org'}", "attributes": a}
    for i, a in enumerate(
        [
            {"city": "Austin", "age": 52, "plan": "gold", "smoker": True, "hiv_status": "positive"},
            {"city": "Boston", "age": 35, "plan": "silver", "diagnosis": "asthma 50%"},
            {
                "city": "Austin",
                "age": 67,
                "plan": "silver",
                "recall_due": (TODAY + timedelta(days=10)).isoformat(),
            },
            {"city": "Denver", "age": 41, "smoker": False, "hiv_status": "negative"},
            {"city": "austin", "age": 29, "recall_due": (TODAY + timedelta(days=90)).isoformat()},
            {"age": 70, "plan": "gold", "diagnosis": "asthma"},
        ]
    )
]


def load(client: TestClient, keys: Keys) -> dict[str, str]:
    ids = {}
    for p in PEOPLE:
        r = client.post("/v1/marketing/contacts", json=p, headers=keys.admin)
        assert r.status_code == 201, r.text
        ids[p["email"]] = r.json()["id"]
    return ids


def preview(client: TestClient, headers: dict[str, str], rule: Any, sample: int = 100) -> Any:
    return client.post(
        "/v1/marketing/segments/preview", json={"rule": rule, "sample": sample}, headers=headers
    )


def emails(resp: Any) -> set[str]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == len(body["sample"])
    return {s["email"] for s in body["sample"]}


def expected(pred: Any) -> set[str]:
    return {p["email"] for p in PEOPLE if pred(p["attributes"], p["email"])}


def test_rules_select_exactly_what_a_python_filter_selects(client: TestClient, declared: Keys) -> None:
    load(client, declared)
    h = declared.admin
    cases: list[tuple[Any, Any]] = [
        (
            {"attr": "city", "op": "in", "value": ["Austin", "Denver"]},
            lambda a, e: a.get("city") in ("Austin", "Denver"),
        ),
        ({"attr": "age", "op": "between", "value": [35, 60]}, lambda a, e: 35 <= a["age"] <= 60),
        (
            {
                "all": [
                    {"attr": "plan", "op": "eq", "value": "gold"},
                    {"not": {"attr": "age", "op": "lt", "value": 60}},
                ]
            },
            lambda a, e: a.get("plan") == "gold" and a["age"] >= 60,
        ),
        (
            {
                "any": [
                    {"attr": "smoker", "op": "is", "value": True},
                    {"attr": "diagnosis", "op": "contains", "value": "50%"},
                ]
            },
            lambda a, e: a.get("smoker") is True or "50%" in a.get("diagnosis", ""),
        ),
        ({"attr": "diagnosis", "op": "missing"}, lambda a, e: "diagnosis" not in a),
        ({"attr": "plan", "op": "neq", "value": "gold"}, lambda a, e: "plan" in a and a["plan"] != "gold"),
        (
            {"attr": "recall_due", "op": "within_next_days", "value": 30},
            lambda a, e: (
                "recall_due" in a
                and TODAY <= date.fromisoformat(a["recall_due"]) <= TODAY + timedelta(days=30)
            ),
        ),
        (
            {"attr": "hiv_status", "op": "eq", "value": "positive"},
            lambda a, e: a.get("hiv_status") == "positive",
        ),
        ({"attr": "hiv_status", "op": "exists"}, lambda a, e: "hiv_status" in a),
        (
            {"contact": "email_domain", "op": "eq", "value": "Partner.org"},
            lambda a, e: e.endswith("@partner.org"),
        ),
    ]
    for rule, pred in cases:
        assert emails(preview(client, h, rule)) == expected(pred), rule


def test_a_sample_says_which_conditions_matched_without_values(client: TestClient, declared: Keys) -> None:
    load(client, declared)
    rule = {
        "any": [{"attr": "city", "op": "eq", "value": "Boston"}, {"attr": "age", "op": "gte", "value": 65}]
    }
    saved = client.post(
        "/v1/marketing/segments", json={"name": "outreach", "rule": rule}, headers=declared.admin
    )
    assert (
        saved.status_code == 201
        and saved.json()["version"] == 1
        and saved.json()["phi_classes"] == ["demographic"]
    )
    body = client.get("/v1/marketing/segments/outreach/preview", headers=declared.sender).json()
    why = {s["email"]: s["matched"] for s in body["sample"]}
    assert why == {
        "p1@example.net": ["attr:city:eq"],
        "p2@example.net": ["attr:age:gte"],
        "p5@example.net": ["attr:age:gte"],
    }
    again = client.post(
        "/v1/marketing/segments", json={"name": "outreach", "rule": rule}, headers=declared.admin
    )
    assert again.json()["version"] == 2


def test_phi_classes_decide_who_may_use_a_segment_and_each_use_is_audited(
    client: TestClient, declared: Keys, services: Services
) -> None:
    load(client, declared)
    clinical = {"attr": "diagnosis", "op": "eq", "value": "asthma"}
    assert (
        client.post(
            "/v1/marketing/segments", json={"name": "a", "rule": clinical}, headers=declared.sender
        ).status_code
        == 403
    )
    assert preview(client, declared.sender, clinical).status_code == 403
    sensitive = {"attr": "hiv_status", "op": "eq", "value": "positive"}
    assert preview(client, declared.sender, sensitive).status_code == 403
    assert (
        preview(client, declared.reader, {"attr": "age", "op": "gt", "value": 1}).status_code == 403
    )  # no send scope
    saved = client.post(
        "/v1/marketing/segments", json={"name": "hiv", "rule": sensitive}, headers=declared.admin
    )
    assert saved.json()["phi_classes"] == ["sensitive"]
    assert client.get("/v1/marketing/segments/hiv/preview", headers=declared.sender).status_code == 403
    assert client.get("/v1/marketing/segments/hiv/preview", headers=declared.admin).json()["count"] == 1
    with services.engine.connect() as conn:
        details = [
            d
            for (d,) in conn.execute(
                sa.select(audit_log.c.details).where(audit_log.c.action == "mkt_segment:evaluated")
            )
        ]
    assert {"count": 1, "phi_classes": ["sensitive"]} in details
    assert all("positive" not in str(d) for d in details)


def test_hostile_names_and_values_are_refused_or_matched_literally(
    client: TestClient, declared: Keys
) -> None:
    load(client, declared)
    h = declared.admin
    bad_name = preview(client, h, {"attr": "city') OR 1=1 --", "op": "eq", "value": "x"})
    assert bad_name.status_code == 422 and bad_name.json()["errors"][0]["field"] == "rule.attr"
    path = preview(client, h, {"attr": "$.city", "op": "eq", "value": "x"})
    assert path.status_code == 422
    assert emails(preview(client, h, {"attr": "city", "op": "eq", "value": "x' OR '1'='1"})) == set()
    assert emails(preview(client, h, {"attr": "diagnosis", "op": "contains", "value": "%"})) == {
        "p1@example.net"
    }
    assert emails(preview(client, h, {"attr": "city", "op": "starts_with", "value": "_ustin"})) == set()
    wrong_type = preview(client, h, {"attr": "age", "op": "contains", "value": "5"})
    assert wrong_type.status_code == 422 and wrong_type.json()["errors"][0]["field"] == "rule.op"
    not_number = preview(client, h, {"all": [{"attr": "age", "op": "gt", "value": "old"}]})
    assert not_number.status_code == 422 and not_number.json()["errors"][0]["field"] == "rule.all[0].value"
    extra = preview(client, h, {"attr": "age", "op": "gt", "value": 1, "sql": "DROP TABLE x"})
    assert extra.status_code == 422
    # Wrong JSON types where the grammar names something: 422 problems, never a crash.
    for rule in (
        {"attr": ["city"], "op": "eq", "value": "x"},
        {"attr": "city", "op": {"$ne": 1}, "value": "x"},
        {"any": [{"contact": ["status"], "op": "eq", "value": "active"}]},
        {"consent": ["marketing"], "state": "granted"},
        {"consent": "marketing", "state": ["granted"]},
        {"engaged": {"kind": "open"}},
        {"all": "everyone"},
        {"not": [1, 2]},
        {"attr": "age", "op": "between", "value": [1]},
        {"list": ["vip"]},
    ):
        r = preview(client, h, rule)
        assert r.status_code == 422, (rule, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def test_depth_and_size_are_bounded(client: TestClient, declared: Keys) -> None:
    leaf: Any = {"attr": "age", "op": "gt", "value": 1}
    deep = leaf
    for _ in range(6):
        deep = {"not": deep}
    r = preview(client, declared.admin, deep)
    assert r.status_code == 422 and "deeper" in r.text
    wide = {"any": [leaf] * 51}
    r = preview(client, declared.admin, wide)
    assert r.status_code == 422 and "at most 50" in r.text
    many = {"attr": "city", "op": "in", "value": ["x"] * 201}
    assert preview(client, declared.admin, many).status_code == 422


def test_consent_list_and_human_engagement_leaves(
    client: TestClient, declared: Keys, services: Services, tenant: TenantFixture
) -> None:
    ids = load(client, declared)
    client.post(
        f"/v1/marketing/contacts/{ids['p1@example.net']}/consent",
        json={"purpose": "fundraising", "action": "grant"},
        headers=declared.sender,
    )
    client.post(
        f"/v1/marketing/contacts/{ids['p2@example.net']}/consent",
        json={"purpose": "fundraising", "action": "revoke"},
        headers=declared.sender,
    )
    granted = preview(client, declared.admin, {"consent": "fundraising", "state": "granted"})
    assert emails(granted) == {"p1@example.net"} and granted.json()["phi_classes"] == ["clinical"]
    none = emails(preview(client, declared.admin, {"consent": "fundraising", "state": "none"}))
    assert none == {p["email"] for p in PEOPLE} - {"p1@example.net", "p2@example.net"}
    client.post("/v1/marketing/lists", json={"name": "vip"}, headers=declared.sender)
    client.post(
        "/v1/marketing/lists/vip/members",
        json={"contact_ids": [ids["p4@partner.org"] if "p4@partner.org" in ids else ids["p3@partner.org"]]},
        headers=declared.sender,
    )
    assert len(emails(preview(client, declared.admin, {"list": "vip"}))) == 1
    # A human click and a machine open, on messages sent to two contacts.
    now = datetime.now(UTC)
    with services.engine.begin() as conn:
        for email, kind, bot in (
            ("p0@partner.org", "message.clicked", False),
            ("p1@example.net", "message.opened", True),
        ):
            mid = new_id("msg")
            conn.execute(
                sa.insert(mkt_sends).values(
                    message_id=mid,
                    tenant_id=tenant.id,
                    contact_id=ids[email],
                    purpose="marketing",
                    channel="email",
                    remunerated=False,
                    matched=[],
                    quiet_start=0,
                    quiet_end=0,
                    state="sent",
                    created_at=now,
                )
            )
            conn.execute(
                sa.insert(events).values(
                    id=new_id("evt"),
                    tenant_id=tenant.id,
                    message_id=mid,
                    type=kind,
                    seq=1,
                    created_at=now,
                    data={"bot_suspected": bot},
                )
            )
    assert emails(preview(client, declared.admin, {"engaged": "click", "within_days": 7})) == {
        "p0@partner.org"
    }
    assert (
        emails(preview(client, declared.admin, {"engaged": "open"})) == set()
    )  # the machine open does not count
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mkt_contacts)).scalar() == len(PEOPLE)


# SQLite only: PostgreSQL readers never block writers.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_count_holds_no_write_lock_while_it_reads(
    client: TestClient, declared: Keys, services: Services
) -> None:
    """A count reads every contact of the tenant (0.6 s at a million on SQLite): intake and the
    workers must be able to write meanwhile, so it runs on a read transaction."""
    assert db.is_sqlite(services.engine)
    load(client, declared)
    seen: list[bool] = []

    def probe(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().lower().startswith("select count(*)") and "mkt_contacts" in statement:
            other = sqlite3.connect(str(services.engine.url.database), timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # fails at once if the count held the write lock
                other.execute("ROLLBACK")
                seen.append(True)
            except sqlite3.OperationalError:
                seen.append(False)
            finally:
                other.close()

    sa.event.listen(services.engine, "before_cursor_execute", probe)
    try:
        assert preview(client, declared.admin, {"attr": "age", "op": "gt", "value": 30}).json()["count"] == 5
    finally:
        sa.event.remove(services.engine, "before_cursor_execute", probe)
    assert seen == [True]
