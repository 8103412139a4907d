"""Human engagement, end to end on SQLite and PostgreSQL: opens fetched through the real
pixel route (``GET /t/o/{token}``) with a person's browser and with machines' user agents
(Apple Mail Privacy Protection, an image proxy) are told apart by the engagement
classifier, and only the people's count — in campaign and journey node statistics, the
segment ``engaged`` leaf, a journey's engagement branch and the delivery report.  A
proxy's prefetch does not hide the person's own open that follows it."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import NO_QUIET, Shop, shop
from tests.integration.marketing.test_marketing_journeys import FROM, journey, make_due

from sealmail.evidence.reports import Period, delivery_rows
from sealmail.marketing.tables import mkt_sends
from sealmail.store.tables import events, recipients

__all__ = ["pipeline", "shop"]

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
APPLE_MPP = "Mozilla/5.0"  # Apple's proxy: nothing after the product token
GOOGLE_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
SEND = {"send": {"template": "promo", "purpose": "treatment", "from": FROM, **NO_QUIET}}


def delivered_long_ago(shop: Shop) -> None:
    """Move delivery back, so a fetch now is not flagged 'within seconds of delivery'."""
    with shop.p.services.engine.begin() as conn:
        conn.execute(sa.update(recipients).values(updated_at=datetime.now(UTC) - timedelta(minutes=5)))


def recipient_of(shop: Shop) -> dict[str, str]:
    """Address -> recipient id of every marketing message sent."""
    with shop.p.services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(recipients.c.address, recipients.c.id).join(
                mkt_sends, mkt_sends.c.message_id == recipients.c.message_id
            )
        ).all()
    return {a: rid for a, rid in rows}


def open_pixel(shop: Shop, rid: str, user_agent: str) -> None:
    path = urlsplit(shop.p.services.engagement.open_url(rid)).path
    got = shop.client.get(path, headers={"User-Agent": user_agent})
    assert got.status_code == 200 and got.headers["content-type"] == "image/gif"


def opens(shop: Shop) -> list[tuple[str, bool]]:
    with shop.p.services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(recipients.c.address, events.c.data)
            .join(recipients, recipients.c.id == events.c.recipient_id)
            .where(events.c.type == "message.opened")
        ).all()
    return sorted((a, bool(d["machine_open"])) for a, d in rows)


def test_machine_opens_are_left_out_of_campaign_stats_segments_and_reports(shop: Shop) -> None:
    for who in ("ann", "bob", "cat", "dan"):
        shop.contact(f"{who}@example.net")
    started = datetime.now(UTC) - timedelta(minutes=1)
    sent = shop.campaign("treatment")
    shop.p.run_worker()
    shop.p.sink.wait_for(4)
    delivered_long_ago(shop)
    rid = recipient_of(shop)
    open_pixel(shop, rid["ann@example.net"], FIREFOX)  # a person
    open_pixel(shop, rid["bob@example.net"], APPLE_MPP)  # Apple MPP's preload
    open_pixel(shop, rid["dan@example.net"], GOOGLE_PROXY)  # Gmail's image proxy
    open_pixel(shop, rid["cat@example.net"], APPLE_MPP)  # a preload, then the person reads it
    open_pixel(shop, rid["cat@example.net"], FIREFOX)
    open_pixel(shop, rid["cat@example.net"], FIREFOX)  # a reload in the interval: still one
    assert opens(shop) == [
        ("ann@example.net", False),
        ("bob@example.net", True),
        ("cat@example.net", False),
        ("cat@example.net", True),
        ("dan@example.net", True),
    ]
    stats = shop.client.get(f"/v1/marketing/campaigns/{sent['id']}/stats", headers=shop.h)
    assert stats.status_code == 200, stats.text
    [variant] = stats.json()["variants"].values()
    assert (variant["delivered"], variant["opened"]) == (4, 2)
    preview = shop.client.post(
        "/v1/marketing/segments/preview", json={"rule": {"engaged": "open"}}, headers=shop.h
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == 2
    assert {s["email"] for s in preview.json()["sample"]} == {"ann@example.net", "cat@example.net"}
    rows = delivery_rows(shop.p.services.engine, shop.p.tenant.id, Period(started, datetime.now(UTC)))
    assert rows[-1][0] == "opened" and rows[-1][-1] == "2"


def test_a_journey_branches_and_counts_on_human_opens_only(shop: Shop) -> None:
    for who in ("ann", "bob"):
        shop.contact(f"{who}@example.net")
    listed = shop.client.post("/v1/marketing/lists", json={"name": "readers"}, headers=shop.h)
    assert listed.status_code == 201
    steps = [
        SEND,
        {"wait": {"hours": 1}},
        {"condition": {"rule": {"engaged": "open", "within_days": 7}, "else": "exit"}},
        {"add_to_list": "readers"},
    ]
    saved = journey(shop, "read-it", {"type": "api_event", "event": "joined"}, steps)
    assert saved.status_code == 201, saved.text
    jid = saved.json()["id"]
    for who in ("ann", "bob"):
        r = shop.client.post(
            "/v1/marketing/journeys/events", json={"event": "joined", "email": f"{who}@example.net"},
            headers=shop.h,
        )  # fmt: skip
        assert r.status_code == 200, r.text
    journeys = shop.p.services.marketing.journeys
    journeys.run_due("j1")
    shop.p.run_worker()
    shop.p.sink.wait_for(2)
    delivered_long_ago(shop)
    rid = recipient_of(shop)
    open_pixel(shop, rid["ann@example.net"], FIREFOX)
    open_pixel(shop, rid["bob@example.net"], APPLE_MPP)
    make_due(shop)
    journeys.run_due("j1")
    states = {
        e["contact_id"]: (e["state"], e["last_reason"])
        for e in shop.client.get(f"/v1/marketing/journeys/{jid}/enrollments", headers=shop.h).json()["data"]
    }
    assert sorted(states.values()) == [("done", "completed"), ("exited", "condition")]
    members = shop.client.get("/v1/marketing/lists", headers=shop.h).json()["data"]
    assert [(m["name"], m["members"]) for m in members] == [("readers", 1)]
    stats = shop.client.get(f"/v1/marketing/journeys/{jid}/stats", headers=shop.h).json()
    node = stats["nodes"][0]
    assert (node["sent"], node["delivered"], node["opened"]) == (2, 2, 1)
