"""The audience snapshot says why each contact matched a rule with ``not`` in it, on SQLite
and PostgreSQL: a negated condition that let a contact in is recorded as ``not: <leaf>``,
each label once, and a wide rule's reasons stay bounded."""

from typing import Any

from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import Shop, shop

from sealmail.marketing.segments import MAX_REASONS

__all__ = ["pipeline", "shop"]


def segment(shop: Shop, name: str, rule: Any) -> None:
    saved = shop.client.post("/v1/marketing/segments", json={"name": name, "rule": rule}, headers=shop.h)
    assert saved.status_code == 201, saved.text


def test_a_campaign_snapshot_records_negated_conditions_as_reasons(shop: Shop) -> None:
    shop.contact("kim@example.net")
    vip = shop.contact("vip@example.net")
    shop.contact("ill@example.net", diagnosis="flu")
    assert shop.client.post("/v1/marketing/lists", json={"name": "vip"}, headers=shop.h).status_code == 201
    shop.client.post("/v1/marketing/lists/vip/members", json={"contact_ids": [vip]}, headers=shop.h)
    rule = {
        "all": [
            {"attr": "first_name", "op": "exists"},
            {"not": {"list": "vip"}},
            {"not": {"not": {"attr": "diagnosis", "op": "missing"}}},  # twice negated: a plain leaf
        ]
    }
    segment(shop, "not-vip", rule)
    sent = shop.campaign("treatment", segment="not-vip")
    assert sent["audience"] == 1
    [only] = shop.audience(sent["id"]).items()
    assert only[0] == "kim@example.net"
    assert only[1]["matched"] == ["attr:first_name:exists", "not: list", "attr:diagnosis:missing"]


def test_reasons_are_each_label_once_and_bounded(shop: Shop) -> None:
    shop.contact("kim@example.net")
    false_for_kim = [
        *({"attr": "first_name", "op": op, "value": v} for op, v in (
            ("eq", "zz"), ("neq", "kim"), ("in", ["zz"]), ("not_in", ["kim"]),
            ("contains", "zz"), ("starts_with", "zz"), ("eq", "yy"),
        )),
        {"attr": "first_name", "op": "missing"},
        {"attr": "diagnosis", "op": "exists"},
        {"attr": "diagnosis", "op": "neq", "value": "x"},
        {"attr": "diagnosis", "op": "not_in", "value": ["x"]},
        {"contact": "status", "op": "eq", "value": "inactive"},
        {"contact": "tz", "op": "eq", "value": "Mars/Olympus"},
        {"contact": "email_domain", "op": "eq", "value": "nowhere.example"},
        {"list": "no-such-list"},
        {"consent": "marketing", "state": "granted"},
        {"engaged": "open"},
    ]  # fmt: skip
    preview = shop.client.post(
        "/v1/marketing/segments/preview", json={"rule": {"not": {"any": false_for_kim}}}, headers=shop.h
    )
    assert preview.status_code == 200, preview.text
    [sample] = preview.json()["sample"]
    why = sample["matched"]
    assert len(why) == MAX_REASONS and why[-1] == "+5 more"  # 16 distinct labels
    assert why[0] == "not: attr:first_name:eq" and len(set(why)) == len(why)
    assert all(w.startswith("not: ") for w in why[:-1])
