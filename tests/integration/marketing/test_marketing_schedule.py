"""A scheduled campaign (``send_at``) end to end on SQLite and PostgreSQL: its audience is
taken and queued at start, nothing is delivered before ``send_at``, and an authorization
revoked between scheduling and ``send_at`` is honoured by the claim gate when the time
comes.  A ``send_at`` without a time zone or too far ahead is a 422."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import NO_QUIET, Shop, shop

from sealmail.store.tables import recipients

__all__ = ["pipeline", "shop"]


def test_a_scheduled_campaign_waits_for_send_at_and_honours_an_opt_out_before_it(shop: Shop) -> None:
    pat, sam = shop.contact("pat@example.net"), shop.contact("sam@example.net")
    shop.authorize(pat)
    shop.authorize(sam)
    send_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    sent = shop.campaign("marketing", send_at=send_at.isoformat())
    assert (sent["audience"], sent["queued"]) == (2, 2)
    assert datetime.fromisoformat(sent["send_at"]) == send_at
    assert shop.p.run_worker() == 0  # nothing is due before send_at
    assert shop.received() == []
    with shop.p.services.engine.connect() as conn:
        due = conn.execute(sa.select(recipients.c.status, recipients.c.next_attempt_at)).all()
    assert [(s, n.astimezone(UTC)) for s, n in due] == [("queued", send_at)] * 2
    # Between scheduling and send_at, sam revokes the marketing authorization.
    revoke = {"purpose": "marketing", "action": "revoke", "source": "staff"}
    r = shop.client.post(f"/v1/marketing/contacts/{sam}/consent", json=revoke, headers=shop.h)
    assert r.status_code == 200, r.text
    # send_at comes (the queue's due time reached, as an hour passing would).
    with shop.p.services.engine.begin() as conn:
        conn.execute(sa.update(recipients).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    assert shop.received() == ["pat@example.net"]
    seen = shop.audience(sent["id"])
    assert {a: (s["state"], s["reason"]) for a, s in seen.items()} == {
        "pat@example.net": ("sent", None),
        "sam@example.net": ("skipped", "authorization_revoked"),
    }


def test_a_send_at_without_a_zone_or_too_far_ahead_is_refused(shop: Shop) -> None:
    body = {
        "name": "later",
        "purpose": "treatment",
        "segment": "everyone",
        "from": "news@clinic.example",
        "variants": [{"name": "a", "template": "promo"}],
        **NO_QUIET,
    }
    for send_at in ("2030-01-01T09:00:00", (datetime.now(UTC) + timedelta(days=45)).isoformat(), "soon"):
        r = shop.client.post("/v1/marketing/campaigns", json={**body, "send_at": send_at}, headers=shop.h)
        assert r.status_code == 422, (send_at, r.text)
        assert r.json()["errors"][0]["field"].endswith("send_at"), r.text
