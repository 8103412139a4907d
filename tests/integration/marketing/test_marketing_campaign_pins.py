"""Campaign messages on SQLite and PostgreSQL: each pins its template version when the
campaign is created (an edit before the start changes nothing sent), and PHI
personalization goes through SecureLine per recipient like any PHI message, and bounces,
complaints and unsubscribes count in the figures (issue 16)."""

import csv
import email
import email.policy
import io
from datetime import UTC, datetime

import sqlalchemy as sa
from tests.integration.delivery.conftest import MxFarm
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import Shop, shop
from tests.support.dns_server import DnsServer

from sealmail.engagement.tokens import Kind
from sealmail.ids import new_id
from sealmail.store.tables import events

__all__ = ["pipeline", "shop"]


def test_a_campaign_sends_the_template_version_it_was_created_with(shop: Shop) -> None:
    shop.contact("pin@example.net")
    created = shop.draft("treatment")
    assert created["variants"][0]["version"] == 1
    edit = {"subject": "Changed {{ first_name }}", "text": "Changed.\n{{ postal_address }}\nUnsubscribe."}
    assert shop.client.put("/v1/templates/promo", json=edit, headers=shop.h).status_code == 200
    cid = created["id"]
    assert shop.client.post(f"/v1/marketing/campaigns/{cid}/send", headers=shop.h).status_code == 202
    shop.p.services.marketing.runs.expand_due("test-expander")
    shop.p.run_worker()
    shop.p.sink.wait_for(1)
    raw = email.message_from_bytes(shop.p.sink.messages[0].data, policy=email.policy.default)
    assert raw["Subject"] == "Hello pin"  # version 1, not the edit


def test_phi_personalization_goes_through_secureline_never_in_plaintext(
    shop: Shop, mx: MxFarm, dns: DnsServer
) -> None:
    # A destination without STARTTLS: SecureLine must not send the personalized PHI there.
    plain = mx.start({"127.0.0.3": {}})["127.0.0.3"]
    dns.add("plain.example", "MX", "10 mx.plain.example.")
    dns.add("mx.plain.example", "A", "127.0.0.3")
    recall = {
        "name": "recall",
        "subject": "Your care",
        "text": "Dear {{ first_name }}, about your {{ diagnosis }} follow-up.\n--\n{{ postal_address }}",
    }
    assert shop.client.post("/v1/templates", json=recall, headers=shop.h).status_code == 201
    shop.contact("pat@plain.example", diagnosis="melanoma-stage-2")
    rule = {"contact": "email_domain", "op": "eq", "value": "plain.example"}
    assert (
        shop.client.post(
            "/v1/marketing/segments", json={"name": "plain", "rule": rule}, headers=shop.h
        ).status_code
        == 201
    )
    sent = shop.campaign("treatment", segment="plain", variants=[{"name": "a", "template": "recall"}])
    assert sent["queued"] == 1
    shop.p.run_worker()
    [notice] = plain.wait_for(1)
    assert not notice.tls
    assert b"melanoma" not in notice.data and b"sent you a secure message" in notice.data
    [send] = shop.audience(sent["id"]).values()
    got = shop.p.services.messages.list_events(
        shop.p.tenant.principal, message_id=send["message_id"], type_="message.delivered"
    )
    assert got.data[0]["data"]["secureline"]["method"] == "portal"


def test_a_bounce_a_complaint_and_an_unsubscribe_each_count_in_their_variants_figures(shop: Shop) -> None:
    for local in ("permfail-550", "ann", "bob"):
        shop.contact(f"{local}@example.net")
    sent = shop.campaign("treatment")
    shop.p.run_worker()
    shop.p.sink.wait_for(2)
    by_address = shop.audience(sent["id"])
    services = shop.p.services
    # Bob unsubscribes by one click (a real token); Ann's mailbox provider reports a complaint.
    bob = shop.p.message(by_address["bob@example.net"]["message_id"])["recipients"][0]["id"]
    assert services.engagement.unsubscribe(services.engagement.token(Kind.UNSUBSCRIBE, bob), "one_click")
    ann = by_address["ann@example.net"]["message_id"]
    with services.engine.begin() as conn:
        conn.execute(
            sa.insert(events).values(
                id=new_id("evt"), tenant_id=shop.p.tenant.id, message_id=ann, type="message.complained",
                seq=99, created_at=datetime.now(UTC), data={},
            )
        )  # fmt: skip
    stats = shop.client.get(f"/v1/marketing/campaigns/{sent['id']}/stats", headers=shop.h).json()
    pick = ("sent", "delivered", "bounced", "complained", "unsubscribed")
    assert {k: stats["variants"]["a"][k] for k in pick} == dict(zip(pick, (3, 2, 1, 1, 1), strict=True))
    table = shop.client.get(f"/v1/marketing/campaigns/{sent['id']}/stats.csv", headers=shop.h)
    [row] = csv.DictReader(io.StringIO(table.text))
    assert (row["bounced"], row["complained"], row["unsubscribed"]) == ("1", "1", "1")
