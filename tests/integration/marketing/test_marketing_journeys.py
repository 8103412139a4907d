"""Journeys end to end on SQLite and PostgreSQL: triggers enrol a contact once; a runner
claims due enrollments and runs send → wait → condition steps; sends reach a loopback MX
through the same claim gate as campaigns; bad definitions are 422s."""

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import Shop, shop

from sealmail.marketing.tables import mkt_enrollments, mkt_sends

__all__ = ["pipeline", "shop"]

FROM = "Clinic <care@clinic.example>"


def journey(shop: Shop, name: str, trigger: dict[str, Any], steps: list[dict[str, Any]]) -> Any:
    return shop.client.post(
        "/v1/marketing/journeys",
        json={"name": name, "definition": {"trigger": trigger, "steps": steps}},
        headers=shop.h,
    )


def make_due(shop: Shop) -> None:
    with shop.p.services.engine.begin() as conn:
        conn.execute(sa.update(mkt_enrollments).values(due_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_an_event_enrols_once_and_the_journey_sends_waits_and_branches(shop: Shop) -> None:
    shop.contact("ann@example.net", diagnosis="asthma")
    shop.contact("bob@example.net")
    steps = [
        {
            "send": {
                "template": "promo",
                "purpose": "treatment",
                "from": FROM,
                "quiet_start": 0,
                "quiet_end": 0,
            }
        },
        {"wait": {"hours": 24}},
        {"condition": {"rule": {"attr": "diagnosis", "op": "eq", "value": "asthma"}, "else": "exit"}},
        {"add_to_list": "asthma-followup"},
        {
            "send": {
                "template": "promo",
                "purpose": "treatment",
                "from": FROM,
                "quiet_start": 0,
                "quiet_end": 0,
            }
        },
    ]
    shop.client.post("/v1/marketing/lists", json={"name": "asthma-followup"}, headers=shop.h)
    saved = journey(shop, "after-visit", {"type": "api_event", "event": "visit"}, steps)
    assert saved.status_code == 201, saved.text
    for who in ("ann@example.net", "bob@example.net", "ann@example.net"):
        shop.client.post(
            "/v1/marketing/journeys/events",
            json={"event": "visit", "email": who, "key": "v1"},
            headers=shop.h,
        )
    enrollments = shop.client.get(
        f"/v1/marketing/journeys/{saved.json()['id']}/enrollments", headers=shop.h
    ).json()["data"]
    assert len(enrollments) == 2  # the repeated event enrolled nobody twice
    journeys = shop.p.services.marketing.journeys
    assert journeys.run_due("j1") == 4  # a send and a wait for each
    assert journeys.run_due("j1") == 0  # both wait 24 hours
    shop.p.run_worker()
    shop.p.sink.wait_for(2)
    make_due(shop)
    journeys.run_due("j1")
    shop.p.run_worker()
    shop.p.sink.wait_for(3)
    assert shop.received() == ["ann@example.net", "ann@example.net", "bob@example.net"]
    states = {
        e["contact_id"]: (e["state"], e["last_reason"])
        for e in shop.client.get(
            f"/v1/marketing/journeys/{saved.json()['id']}/enrollments", headers=shop.h
        ).json()["data"]
    }
    assert sorted(states.values()) == [("done", "completed"), ("exited", "condition")]
    lists = shop.client.get("/v1/marketing/lists", headers=shop.h).json()["data"]
    assert lists == [{"id": lists[0]["id"], "name": "asthma-followup", "members": 1}]
    with shop.p.services.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).where(mkt_sends.c.enrollment_id.is_not(None))).scalar()
            == 3
        )


def test_journey_sends_pass_the_claim_gate(shop: Shop) -> None:
    cid = shop.contact("opted@example.net")
    shop.client.post(
        f"/v1/marketing/contacts/{cid}/consent",
        json={"purpose": "marketing", "action": "grant"},
        headers=shop.h,
    )
    steps = [
        {
            "send": {
                "template": "promo",
                "purpose": "marketing",
                "from": FROM,
                "quiet_start": 0,
                "quiet_end": 0,
            }
        }
    ]
    journey(shop, "promo", {"type": "list_join", "list": "newsletter"}, steps)
    shop.client.post("/v1/marketing/lists", json={"name": "newsletter"}, headers=shop.h)
    joined = shop.client.post(
        "/v1/marketing/lists/newsletter/members", json={"contact_ids": [cid]}, headers=shop.h
    )
    assert joined.json()["enrolled"] == 1
    again = shop.client.post(
        "/v1/marketing/lists/newsletter/members", json={"contact_ids": [cid]}, headers=shop.h
    )
    assert again.json()["enrolled"] == 0
    shop.p.services.marketing.journeys.run_due("j1")
    shop.p.run_worker()
    assert shop.received() == []  # consent is not an authorization
    with shop.p.services.engine.connect() as conn:
        assert conn.execute(sa.select(mkt_sends.c.reason)).scalar() == "no_authorization"


def test_a_date_attribute_enrols_contacts_whose_date_is_near(shop: Shop) -> None:
    shop.client.post(
        "/v1/marketing/attributes",
        json={"name": "recall_due", "type": "date", "phi_class": "clinical"},
        headers=shop.h,
    )
    soon = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()
    shop.contact("due@example.net", recall_due=soon)
    shop.contact("later@example.net", recall_due="2099-01-01")
    steps = [
        {
            "send": {
                "template": "promo",
                "purpose": "treatment",
                "from": FROM,
                "quiet_start": 0,
                "quiet_end": 0,
            }
        }
    ]
    assert (
        journey(
            shop, "recall", {"type": "date_attribute", "attr": "recall_due", "days_before": 7}, steps
        ).status_code
        == 201
    )
    journeys = shop.p.services.marketing.journeys
    assert journeys.enroll_dates(shop.p.tenant.id) == 1
    assert journeys.enroll_dates(shop.p.tenant.id) == 0
    journeys.run_due("j1")
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["due@example.net"]


def test_bad_definitions_are_refused(shop: Shop) -> None:
    send = {"send": {"template": "promo", "purpose": "treatment", "from": FROM}}
    cases = [
        ({"type": "cron"}, [send], "trigger.type"),
        ({"type": "api_event", "event": "x"}, [], "steps"),
        ({"type": "api_event", "event": "x"}, [send] * 21, "steps"),
        ({"type": "api_event", "event": "x"}, [{"wait": {"hours": -1}}], "steps[0].wait.hours"),
        (
            {"type": "api_event", "event": "x"},
            [{"condition": {"rule": {"attr": "first_name", "op": "exists"}, "else": 0}}],
            "steps[0].condition.else",
        ),
        (
            {"type": "api_event", "event": "x"},
            [{"send": {"template": "nope", "purpose": "treatment", "from": FROM}}],
            "steps[0].send.template",
        ),
        ({"type": "api_event", "event": "x"}, [{"shell": "rm -rf /"}], "steps[0]"),
        ({"type": "date_attribute", "attr": "first_name"}, [send], "trigger.attr"),
        ({"type": "api_event", "event": "x"}, [{"wait": {"hours": "soon"}}], "steps[0].wait.hours"),
        (
            {"type": "api_event", "event": "x"},
            [{"send": {"template": "promo", "purpose": ["treatment"]}}],
            "definition",
        ),
        ({"type": ["api_event"]}, [send], "definition"),
    ]
    for trigger, steps, field in cases:
        r = journey(shop, "bad", trigger, steps)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["errors"][0]["field"] == field
