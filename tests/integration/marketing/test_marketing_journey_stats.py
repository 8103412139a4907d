"""Journey node analytics and the claim gate for paused and cancelled campaigns, end to end
on SQLite and PostgreSQL: journey sends reach a loopback MX, engagement events (a machine
open among them) and a reported conversion land in the right node's figures, in the API,
its CSV and the console; a paused campaign is held at the claim and sent after resume, a
cancelled one is skipped."""

import csv
import io
from datetime import UTC, datetime

import sqlalchemy as sa
from tests.integration.console.console_harness import console_server, enrol
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import NO_QUIET, Shop, shop
from tests.integration.marketing.test_marketing_journeys import FROM, journey, make_due

from sealmail.ids import new_id
from sealmail.marketing.tables import mkt_sends
from sealmail.store.tables import events, recipients
from sealmail.users.roles import Role

__all__ = ["pipeline", "shop"]

SEND = {"send": {"template": "promo", "purpose": "treatment", "from": FROM, **NO_QUIET}}


def engagement(shop: Shop, message_id: str, kind: str, *, bot: bool = False) -> None:
    with shop.p.services.engine.begin() as conn:
        conn.execute(
            sa.insert(events).values(
                id=new_id("evt"), tenant_id=shop.p.tenant.id, message_id=message_id, type=kind,
                seq=90 + bot, created_at=datetime.now(UTC), data={"bot_suspected": bot},
            )
        )  # fmt: skip


def test_each_journey_node_counts_its_own_sends_human_engagement_and_conversions(shop: Shop) -> None:
    for who in ("ann", "bob"):
        shop.contact(f"{who}@example.net")
    steps = [SEND, {"wait": {"hours": 1}}, SEND, {"exit": {}}]
    saved = journey(shop, "two-touch", {"type": "api_event", "event": "joined"}, steps)
    assert saved.status_code == 201, saved.text
    jid = saved.json()["id"]
    for who in ("ann", "bob"):
        shop.client.post(
            "/v1/marketing/journeys/events",
            json={"event": "joined", "email": f"{who}@example.net"},
            headers=shop.h,
        )
    journeys = shop.p.services.marketing.journeys
    journeys.run_due("j1")
    shop.p.run_worker()
    shop.p.sink.wait_for(2)
    make_due(shop)
    journeys.run_due("j1")
    shop.p.run_worker()
    shop.p.sink.wait_for(4)
    with shop.p.services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(mkt_sends.c.step, recipients.c.address, mkt_sends.c.message_id).join(
                recipients, recipients.c.message_id == mkt_sends.c.message_id
            )
        ).all()
    by_step = {(step, address): message_id for step, address, message_id in rows}
    first_ann, first_bob = by_step[(0, "ann@example.net")], by_step[(0, "bob@example.net")]
    second_ann = by_step[(2, "ann@example.net")]
    engagement(shop, first_ann, "message.opened")
    engagement(shop, first_ann, "message.opened")  # the same person twice: one message
    engagement(shop, first_bob, "message.opened", bot=True)  # a mail proxy: not a human
    engagement(shop, first_bob, "message.clicked", bot=True)
    engagement(shop, second_ann, "message.clicked")
    converted = shop.client.post(
        "/v1/marketing/conversions",
        json={"message_id": second_ann, "name": "booked", "value": 120},
        headers=shop.h,
    )
    assert converted.status_code == 201, converted.text
    assert (converted.json()["journey_id"], converted.json()["step"]) == (jid, 2)
    nowhere = shop.client.post(
        "/v1/marketing/conversions", json={"message_id": "msg_x", "name": "b"}, headers=shop.h
    )
    assert nowhere.status_code == 404
    bad = shop.client.post(
        "/v1/marketing/conversions", json={"message_id": second_ann, "name": ""}, headers=shop.h
    )
    assert bad.status_code == 422
    stats = shop.client.get(f"/v1/marketing/journeys/{jid}/stats", headers=shop.h)
    assert stats.status_code == 200, stats.text
    nodes = {n["step"]: n for n in stats.json()["nodes"]}
    assert [n["kind"] for n in stats.json()["nodes"]] == ["send", "wait", "send", "exit"]
    pick = ("sent", "delivered", "opened", "clicked", "converted", "bounced", "complained", "unsubscribed")
    assert {k: nodes[0][k] for k in pick} == dict(zip(pick, (2, 2, 1, 0, 0, 0, 0, 0), strict=True))
    assert {k: nodes[2][k] for k in pick} == dict(zip(pick, (2, 2, 0, 1, 1, 0, 0, 0), strict=True))
    assert nodes[1]["sent"] == 0 and nodes[0]["detail"] == "promo"
    table = shop.client.get(f"/v1/marketing/journeys/{jid}/stats.csv", headers=shop.h)
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [(r["step"], r["sent"], r["opened"], r["converted"]) for r in rows] == [
        ("0", "2", "1", "0"),
        ("1", "0", "0", "0"),
        ("2", "2", "0", "1"),
        ("3", "0", "0", "0"),
    ]
    assert shop.client.get("/v1/marketing/journeys/jny_other/stats", headers=shop.h).status_code == 404
    with console_server(shop.p.services) as console:
        _, token = console.users.invite(shop.p.tenant.id, "s@clinic.example", "S", Role.SENDER, actor="test")
        sender = enrol(console, token, "s@clinic.example")
        page = sender.http.get(f"/console/marketing/journeys/{jid}")
        assert page.status_code == 200 and "two-touch" in page.text and "<svg" in page.text
        assert "ann@example.net" not in page.text
        got = sender.http.get(f"/console/marketing/journeys/{jid}/nodes.csv")
        assert got.status_code == 200 and got.text.splitlines()[0].startswith("step,kind,detail,at_node")
        assert sender.http.get("/console/marketing/journeys/jny_nope").status_code == 404


def test_a_paused_campaign_is_held_at_the_claim_and_sent_after_resume_and_a_cancelled_one_never(
    shop: Shop,
) -> None:
    shop.contact("kim@example.net")
    sent = shop.campaign("treatment")
    url = f"/v1/marketing/campaigns/{sent['id']}"
    assert shop.client.post(f"{url}/pause", headers=shop.h).json()["status"] == "paused"
    shop.p.run_worker()
    with shop.p.services.engine.connect() as conn:
        held = conn.execute(sa.select(recipients.c.last_reason)).scalar()
    assert held == "campaign_paused" and shop.received() == []
    assert shop.client.post(f"{url}/resume", headers=shop.h).json()["status"] == "sending"
    with shop.p.services.engine.begin() as conn:  # the deferral's recheck time comes
        conn.execute(sa.update(recipients).values(next_attempt_at=datetime.now(UTC)))
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["kim@example.net"]
    assert shop.p.services.marketing.runs.settle() == 1
    assert shop.client.get(url, headers=shop.h).json()["status"] == "sent"
    shop.contact("lee@example.net")
    other = shop.campaign("treatment")
    assert (
        shop.client.post(f"/v1/marketing/campaigns/{other['id']}/cancel", headers=shop.h).status_code == 200
    )
    shop.p.run_worker()
    seen = shop.audience(other["id"])
    assert {a: (s["state"], s["reason"]) for a, s in seen.items()} == {
        "kim@example.net": ("skipped", "campaign_cancelled"),
        "lee@example.net": ("skipped", "campaign_cancelled"),
    }
    assert shop.received() == ["kim@example.net"]
