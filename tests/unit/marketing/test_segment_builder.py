"""The console's segment builder turns form fields into rule leaves and nests them into
all/any/not groups; it parses the JSON box and leaves validity to the rule compiler."""

from __future__ import annotations

import json

import pytest

from sealmail.console import segment_builder as sb
from sealmail.domain.marketing import PhiClass
from sealmail.marketing.attributes import AttributeDef, AttrType


def test_leaves_from_the_form() -> None:
    assert sb.leaf({"kind": "attr", "attr": "age", "op": "between", "value": "30, 40"}) == {
        "attr": "age", "op": "between", "value": ["30", "40"]}  # fmt: skip
    assert sb.leaf({"kind": "attr", "attr": "city", "op": "exists", "value": "ignored"}) == {
        "attr": "city", "op": "exists"}  # fmt: skip
    assert sb.leaf({"kind": "attr", "attr": "due", "op": "within_next_days", "value": " 7 "})["value"] == 7
    assert sb.leaf({"kind": "consent", "purpose": "marketing", "state": "none"}) == {
        "consent": "marketing", "channel": "email", "state": "none"}  # fmt: skip
    assert sb.leaf({"kind": "list", "list": " vip "}) == {"list": "vip"}
    assert sb.leaf({"kind": "engaged", "engaged": "click", "within_days": "14"}) == {
        "engaged": "click", "within_days": 14}  # fmt: skip
    for bad in (
        {"kind": "attr", "attr": "", "op": "eq", "value": "x"},
        {"kind": "attr", "attr": "age", "op": "in", "value": " , "},
        {"kind": "attr", "attr": "age", "op": "eq", "value": "  "},
        {"kind": "attr", "attr": "due", "op": "within_last_days", "value": "soon"},
        {"kind": "list", "list": ""},
        {"kind": "sql"},
    ):
        with pytest.raises(sb.BuildError):
            sb.leaf(bad)


def test_conditions_nest_into_groups_as_they_are_added() -> None:
    a, b, c = {"list": "a"}, {"list": "b"}, {"list": "c"}
    rule = sb.combine(None, a, "all", False)
    assert rule == a
    rule = sb.combine(rule, b, "all", True)
    assert rule == {"all": [a, {"not": b}]}
    assert sb.combine(rule, c, "all", False) == {"all": [a, {"not": b}, c]}
    assert sb.combine(rule, c, "any", False) == {"any": [{"all": [a, {"not": b}]}, c]}
    with pytest.raises(sb.BuildError):
        sb.combine(rule, c, "xor", False)


def test_the_json_box_and_inert_text() -> None:
    assert sb.parse_rule("  ") is None
    assert sb.parse_rule('{"list": "a"}') == {"list": "a"}
    for bad in ("{", "x" * (sb.MAX_RULE_TEXT + 1), "[" * 100_000):
        with pytest.raises(sb.BuildError):
            sb.parse_rule(bad)
    text = sb.pretty({"value": "Bogotá \u202eevil"})
    assert "\u202e" not in text and "\\u202e" in text and "Bogotá" in text
    assert json.loads(text) == {"value": "Bogotá \u202eevil"}
    assert sb.inert("a\u2067b\u200fc") == "a\ufffdb\ufffdc"


def test_operator_groups_follow_the_declared_types() -> None:
    defs = {
        "age": AttributeDef("age", AttrType.NUMBER, PhiClass.DEMOGRAPHIC),
        "hiv": AttributeDef("hiv", AttrType.CHOICE, PhiClass.SENSITIVE, ("yes", "no")),
    }
    groups = dict(sb.op_groups(defs))
    assert "between" in groups["number (age)"] and "contains" not in groups["number (age)"]
    assert set(groups["sensitive (hiv)"]) == {"eq", "neq", "in", "exists", "missing"}
    assert sb.ops_for(defs["hiv"]) == sorted(groups["sensitive (hiv)"])
