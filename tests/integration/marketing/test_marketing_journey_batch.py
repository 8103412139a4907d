"""The batched journey runner on SQLite and PostgreSQL: a round applies a (journey, step)
group's condition, attribute update and list insert in one statement each, keeps the other
attributes, moves every pointer, and leaves a contact that failed the condition alone."""

from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.marketing.attributes import ALL_CLASSES
from sealmail.marketing.contacts import ContactData

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
        assert mk.journeys.event(t, "visit", email, "k1", actor="t") == 1
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
