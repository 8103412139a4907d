"""The batched journey runner on SQLite and PostgreSQL: a round applies a (journey, step)
group's condition, attribute update and list insert in one statement each, keeps the other
attributes, moves every pointer, and leaves a contact that failed the condition alone; a
group's webhook events are written once each, and a group's wait-untils wait on their own
keys, one woken by its event and the others timing out to their branch."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.marketing.attributes import ALL_CLASSES
from sealmail.marketing.contacts import ContactData
from sealmail.marketing.tables import mkt_enrollments
from sealmail.store.tables import events

STEPS = [
    {"condition": {"rule": {"attr": "age", "op": "gte", "value": 40}, "else": "exit"}},
    {"update_attribute": {"name": "stage", "value": "welcomed"}},
    {"add_to_list": "seen"},
    {"wait": {"hours": 1}},
]


def test_a_batch_runs_each_step_for_its_group_and_only_for_it(
    services: Services, tenant: TenantFixture
) -> None:
    mk, t = services.marketing, tenant.id
    mk.attributes.define(t, name="age", type_="number", phi_class="demographic", choices=None, actor="t")
    mk.attributes.define(t, name="stage", type_="text", phi_class="none", choices=None, actor="t")
    mk.lists.create(t, "seen", "t")
    ages = {"old@example.net": 50, "young@example.net": 30, "elder@example.net": 70}
    ids = {
        email: mk.contacts.save(
            t, ContactData(email, attributes={"age": age}), actor="t", classes=ALL_CLASSES
        )[0]["id"]
        for email, age in ages.items()
    }
    journey = mk.journeys.save(
        t,
        "welcome",
        {"trigger": {"type": "api_event", "event": "visit"}, "steps": STEPS},
        actor="t",
        allowed=ALL_CLASSES,
    )
    for email in ages:
        assert mk.journeys.event(t, "visit", email, "k1", actor="t").enrolled == 1
    # Two contacts run all four steps, the young one only the condition.
    assert mk.journeys.run_due("w1") == 9
    assert mk.journeys.run_due("w1") == 0  # both wait an hour
    seen = {c: mk.contacts.get(t, cid, ALL_CLASSES)["attributes"] for c, cid in ids.items()}
    assert seen["old@example.net"] == {"age": 50, "stage": "welcomed"}
    assert seen["elder@example.net"] == {"age": 70, "stage": "welcomed"}
    assert seen["young@example.net"] == {"age": 30}
    members = mk.segments.evaluate(t, rule={"list": "seen"}, actor="t", allowed=ALL_CLASSES)
    assert sorted(m["email"] for m in members["sample"]) == ["elder@example.net", "old@example.net"]
    states = {e["contact_id"]: e for e in mk.journeys.enrollments(t, journey["id"])}
    assert [(states[ids["old@example.net"]][k]) for k in ("state", "step", "steps_run")] == ["active", 4, 4]
    young = states[ids["young@example.net"]]
    assert (young["state"], young["step"], young["last_reason"], young["steps_run"]) == (
        "exited",
        0,
        "condition",
        1,
    )


WAITS = [
    {"webhook": {"label": "crm"}},
    {"wait_until": {"event": "came", "hours": 2, "timeout": 4}},
    {"update_attribute": {"name": "stage", "value": "came"}},
    {"exit": {}},
    {"update_attribute": {"name": "stage", "value": "missed"}},
]


def test_a_batch_of_webhooks_and_wait_untils(services: Services, tenant: TenantFixture) -> None:
    mk, t = services.marketing, tenant.id
    mk.attributes.define(t, name="stage", type_="text", phi_class="none", choices=None, actor="t")
    emails = ["a@example.net", "b@example.net", "c@example.net"]
    ids = {e: mk.contacts.save(t, ContactData(e), actor="t", classes=ALL_CLASSES)[0]["id"] for e in emails}
    mk.lists.create(t, "new", "t")
    journey = mk.journeys.save(
        t,
        "w",
        {"trigger": {"type": "list_join", "list": "new"}, "steps": WAITS},
        actor="t",
        allowed=ALL_CLASSES,
    )
    assert mk.journeys.list_joined(t, "new", list(ids.values()), actor="t") == 3
    assert mk.journeys.run_due("w1") == 6  # each: the webhook, then the wait starts
    assert mk.journeys.run_due("w1") == 0
    with services.engine.connect() as conn:
        hooks = conn.execute(sa.select(events).where(events.c.type == "journey.webhook")).all()
        waiting = {r.contact_id: r for r in conn.execute(sa.select(mkt_enrollments))}
    assert sorted(h.data["contact_id"] for h in hooks) == sorted(ids.values())
    assert {h.message_id for h in hooks} == {r.id for r in waiting.values()}
    assert {c: (r.step, r.awaiting) for c, r in waiting.items()} == {
        c: (1, f"{c}:came") for c in ids.values()
    }
    woke = mk.journeys.event(t, "came", "b@example.net", None, actor="t")
    assert (woke.enrolled, woke.woken) == (0, 1)
    assert mk.journeys.run_due("w1") == 2  # b: its update, then the exit
    with services.engine.begin() as conn:  # the others' two hours pass
        conn.execute(sa.update(mkt_enrollments).values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert mk.journeys.run_due("w1") == 4  # a and c: the timeout, then the no-show update
    stage = {e: mk.contacts.get(t, cid, ALL_CLASSES)["attributes"].get("stage") for e, cid in ids.items()}
    assert stage == {"a@example.net": "missed", "b@example.net": "came", "c@example.net": "missed"}
    states = {e["contact_id"]: (e["state"], e["step"]) for e in mk.journeys.enrollments(t, journey["id"])}
    done = {c: ("done", 5) for c in ids.values()}
    assert states == {**done, ids["b@example.net"]: ("exited", 3)}
    with services.engine.connect() as conn:
        assert set(conn.execute(sa.select(mkt_enrollments.c.awaiting)).scalars()) == {None}
