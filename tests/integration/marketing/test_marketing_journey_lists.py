"""A journey's ``add_to_list`` step starts the journeys that list triggers, as the API's
add-members does — bounded, on SQLite and PostgreSQL: journeys adding to each other's
lists, and one adding to the list that starts it, enrol each contact once and stop."""

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.integration.marketing.conftest import Keys
from tests.integration.marketing.test_marketing_journey_triggers import contact, save, setup, stages

from sealmail.app import Services
from sealmail.marketing.tables import mkt_enrollments, mkt_journeys


def test_add_to_list_fires_list_join_triggers_once_without_looping(
    client: TestClient, keys: Keys, services: Services
) -> None:
    setup(client, keys)  # the "stage" attribute and the list "new"
    assert client.post("/v1/marketing/lists", json={"name": "vip"}, headers=keys.admin).status_code == 201
    to_vip = save(client, keys, "to-vip", {"type": "list_join", "list": "new"}, [{"add_to_list": "vip"}])
    back = save(
        client, keys, "back-to-new", {"type": "list_join", "list": "vip"},
        [{"add_to_list": "new"}, {"update_attribute": {"name": "stage", "value": "vip"}}],
    )  # fmt: skip
    itself = save(client, keys, "self", {"type": "list_join", "list": "vip"}, [{"add_to_list": "vip"}])
    for saved in (to_vip, back, itself):
        assert saved.status_code == 201, saved.text
    ann, bob = contact(client, keys, "ann@example.net"), contact(client, keys, "bob@example.net")
    joined = client.post("/v1/marketing/lists/new/members", json={"contact_ids": [ann]}, headers=keys.sender)
    assert joined.status_code == 200 and joined.json()["enrolled"] == 1
    journeys = services.marketing.journeys
    rounds = 0
    while journeys.run_due("j1"):
        rounds += 1
        assert rounds < 10, "journeys adding to each other's lists must not loop"
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(mkt_journeys.c.name, mkt_enrollments.c.contact_id, mkt_enrollments.c.trigger_key)
            .join(mkt_journeys, mkt_journeys.c.id == mkt_enrollments.c.journey_id)
            .order_by(mkt_journeys.c.name)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("back-to-new", ann, "list:vip"),
        ("self", ann, "list:vip"),
        ("to-vip", ann, "list:new"),
    ]
    assert stages(services) == {"ann@example.net": "vip", "bob@example.net": None}
    members = {
        m["name"]: m["members"] for m in client.get("/v1/marketing/lists", headers=keys.admin).json()["data"]
    }
    assert members == {"new": 1, "vip": 1}
    assert bob
