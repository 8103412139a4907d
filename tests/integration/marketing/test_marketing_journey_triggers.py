"""Journey wait-until, webhook steps and form-submission triggers, on SQLite and PostgreSQL.

An event ends a contact's wait through the indexed ``awaiting`` key (or the wait times out
and jumps); a webhook step reaches a real loopback receiver signed; a consenting form
submission enrols the contact in the journeys that form triggers, once."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from tests.conftest import TenantFixture
from tests.integration.forms.test_forms_consent import make_form, send
from tests.integration.marketing.conftest import Keys
from tests.integration.webhooks.conftest import dispatch
from tests.integration.webhooks.receiver import Receiver

from sealmail.app import Services
from sealmail.marketing.tables import mkt_contacts, mkt_enrollments
from sealmail.webhooks.endpoints import EndpointSpec, WebhookEndpoints


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def setup(client: TestClient, keys: Keys) -> None:
    attr = {"name": "stage", "type": "text", "phi_class": "none"}
    assert client.post("/v1/marketing/attributes", json=attr, headers=keys.admin).status_code == 201
    assert client.post("/v1/marketing/lists", json={"name": "new"}, headers=keys.admin).status_code == 201


def contact(client: TestClient, keys: Keys, email: str) -> str:
    r = client.post("/v1/marketing/contacts", json={"email": email}, headers=keys.admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def save(client: TestClient, keys: Keys, name: str, trigger: dict[str, Any], steps: list[Any]) -> Any:
    body = {"name": name, "definition": {"trigger": trigger, "steps": steps}}
    return client.post("/v1/marketing/journeys", json=body, headers=keys.sender)


def event(client: TestClient, keys: Keys, name: str, email: str) -> dict[str, int]:
    r = client.post(
        "/v1/marketing/journeys/events", json={"event": name, "email": email}, headers=keys.sender
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def stages(services: Services) -> dict[str, Any]:
    with services.engine.connect() as conn:
        return {r.email: r.attrs.get("stage") for r in conn.execute(sa.select(mkt_contacts))}


def test_an_event_ends_a_wait_until_and_a_missed_one_times_out_to_its_branch(
    client: TestClient, keys: Keys, services: Services
) -> None:
    setup(client, keys)
    ann, bob = contact(client, keys, "ann@example.net"), contact(client, keys, "bob@example.net")
    steps = [
        {"wait_until": {"event": "visited", "hours": 48, "timeout": 3}},
        {"update_attribute": {"name": "stage", "value": "visited"}},
        {"exit": {}},
        {"update_attribute": {"name": "stage", "value": "no-show"}},
    ]
    saved = save(client, keys, "visit-or-not", {"type": "list_join", "list": "new"}, steps)
    assert saved.status_code == 201, saved.text
    joined = client.post(
        "/v1/marketing/lists/new/members", json={"contact_ids": [ann, bob]}, headers=keys.sender
    )
    assert joined.json()["enrolled"] == 2
    journeys = services.marketing.journeys
    assert journeys.run_due("r1") == 2  # both start waiting
    assert journeys.run_due("r1") == 0  # nothing is due for 48 hours
    with services.engine.connect() as conn:
        awaiting = set(conn.execute(sa.select(mkt_enrollments.c.awaiting)).scalars())
    assert awaiting == {f"{ann}:visited", f"{bob}:visited"}
    assert event(client, keys, "visited", "ann@example.net") == {"enrolled": 0, "woken": 1}
    assert event(client, keys, "visited", "ann@example.net") == {"enrolled": 0, "woken": 0}  # once
    assert event(client, keys, "other", "bob@example.net")["woken"] == 0  # not what bob waits for
    assert journeys.run_due("r1") == 2  # ann: update, exit
    with services.engine.begin() as conn:  # bob's 48 hours pass
        conn.execute(sa.update(mkt_enrollments).values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    journeys.run_due("r1")
    assert stages(services) == {"ann@example.net": "visited", "bob@example.net": "no-show"}
    states = {
        e["contact_id"]: (e["state"], e["last_reason"])
        for e in client.get(
            f"/v1/marketing/journeys/{saved.json()['id']}/enrollments", headers=keys.admin
        ).json()["data"]
    }
    assert states == {ann: ("exited", "exit_step"), bob: ("done", "completed")}
    # A late event wakes nothing: the wait is over.
    assert event(client, keys, "visited", "bob@example.net")["woken"] == 0


def test_a_timeout_that_exits_and_the_wake_query_uses_the_index(
    client: TestClient, keys: Keys, services: Services
) -> None:
    setup(client, keys)
    contact(client, keys, "cy@example.net")
    steps = [
        {"wait_until": {"event": "paid", "hours": 1}},
        {"update_attribute": {"name": "stage", "value": "paid"}},
    ]
    assert save(client, keys, "pay", {"type": "api_event", "event": "billed"}, steps).status_code == 201
    assert event(client, keys, "billed", "cy@example.net") == {"enrolled": 1, "woken": 0}
    journeys = services.marketing.journeys
    journeys.run_due("r1")
    with services.engine.begin() as conn:
        conn.execute(sa.update(mkt_enrollments).values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    journeys.run_due("r1")
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(mkt_enrollments)).one()
        assert (row.state, row.last_reason, row.awaiting) == ("exited", "wait_timeout", None)
        if conn.dialect.name == "sqlite":
            plan = " ".join(
                str(r[-1])
                for r in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN UPDATE mkt_enrollments SET awaiting = NULL "
                    "WHERE awaiting = 'x' AND tenant_id = 't' AND (lease_until IS NULL OR lease_until < 'z')"
                )
            )
            assert "ix_mkt_enrollments_awaiting" in plan, plan
    assert stages(services) == {"cy@example.net": None}


def test_a_webhook_step_is_delivered_signed_with_ids_only(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture, receiver: Receiver
) -> None:
    setup(client, keys)
    cid = contact(client, keys, "dee@example.net")
    endpoints = WebhookEndpoints(services.engine, services.keyring, allow_insecure_http=True)
    _, secret = endpoints.create(
        tenant.id, EndpointSpec(receiver.url, event_types=["journey.*"]), actor="test"
    )
    steps = [{"webhook": {"label": "crm-sync"}}, {"update_attribute": {"name": "stage", "value": "synced"}}]
    saved = save(client, keys, "sync", {"type": "api_event", "event": "signed_up"}, steps)
    assert saved.status_code == 201, saved.text
    event(client, keys, "signed_up", "dee@example.net")
    assert services.marketing.journeys.run_due("r1") == 2
    assert dispatch(services) == 1
    [request] = receiver.requests
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "journey.webhook"
    data = body["data"]
    assert (data["journey_id"], data["contact_id"], data["step"], data["label"]) == (
        saved.json()["id"],
        cid,
        0,
        "crm-sync",
    )
    assert "dee@example.net" not in request.body.decode()
    assert services.marketing.journeys.run_due("r1") == 0 and dispatch(services) == 0  # once


def test_a_consenting_form_submission_enrols_the_contact_in_the_forms_journeys(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    setup(client, keys)
    form_id = make_form(client, tenant, purpose="marketing")
    steps = [{"update_attribute": {"name": "stage", "value": "welcomed"}}]
    saved = save(client, keys, "welcome", {"type": "form_submission", "form": form_id}, steps)
    assert saved.status_code == 201, saved.text
    other = save(client, keys, "other-form", {"type": "form_submission", "form": "form_elsewhere"}, steps)
    assert other.status_code == 201
    assert send(client, form_id, email="eve@example.org", news="yes") == 303
    assert send(client, form_id, email="eve@example.org", news="yes") == 303  # again: enrolled once
    assert send(client, form_id, email="fay@example.org") == 303  # no consent: no contact, no journey
    enrolled = client.get(
        f"/v1/marketing/journeys/{saved.json()['id']}/enrollments", headers=keys.admin
    ).json()
    assert len(enrolled["data"]) == 1
    none = client.get(f"/v1/marketing/journeys/{other.json()['id']}/enrollments", headers=keys.admin).json()
    assert none["data"] == []
    services.marketing.journeys.run_due("r1")
    assert stages(services) == {"eve@example.org": "welcomed"}


@pytest.mark.parametrize(
    ("trigger", "steps", "field"),
    [
        ({"type": "form_submission"}, [{"exit": {}}], "trigger.form"),
        ({"type": "list_join", "list": ["x"]}, [{"exit": {}}], "trigger.list"),
        ({"type": "api_event", "event": "e"}, [{"wait_until": {"hours": 2}}], "steps[0].wait_until.event"),
        (
            {"type": "api_event", "event": "e"},
            [{"wait_until": {"event": "x", "hours": 0}}],
            "steps[0].wait_until.hours",
        ),
        (
            {"type": "api_event", "event": "e"},
            [{"exit": {}}, {"wait_until": {"event": "x", "hours": 1, "timeout": 0}}],
            "steps[1].wait_until.timeout",
        ),
        (
            {"type": "api_event", "event": "e"},
            [{"wait_until": {"event": "x", "hours": 1, "timeout": True}}],
            "steps[0].wait_until.timeout",
        ),
        ({"type": "api_event", "event": "e"}, [{"webhook": {"label": "x" * 61}}], "steps[0].webhook"),
        ({"type": "api_event", "event": "e"}, [{"webhook": "http://169.254.169.254/"}], "steps[0].webhook"),
    ],
)
def test_bad_wait_until_webhook_and_trigger_definitions_are_refused(
    client: TestClient, keys: Keys, trigger: dict[str, Any], steps: list[Any], field: str
) -> None:
    r = save(client, keys, "bad", trigger, steps)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
