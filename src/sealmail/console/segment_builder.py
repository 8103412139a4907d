"""The console's segment builder: form fields to one rule leaf, and leaves into the tree.

Pure functions over the posted form; nothing here decides whether a rule is valid — the
domain compiler (``marketing.rules.compile_rule``, through ``Segments.evaluate`` and
``save``) does, for the structured form and the advanced JSON alike.  What is checked here
is only what a form needs to become JSON at all: the JSON parses, a list value splits, a
number of days is a number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sealmail.domain.marketing import ConsentState, PhiClass, Purpose
from sealmail.marketing.attributes import AttributeDef, AttrType
from sealmail.marketing.rules import NO_CONSENT, OPS, SENSITIVE_OPS
from sealmail.marketing.schemas import without_nul
from sealmail.marketing.segments import NAME_MAX

MAX_RULE_TEXT = 64 * 1024
KINDS = ("attr", "consent", "list", "engaged")
COMBINE = ("all", "any")
LIST_OPS = frozenset({"in", "not_in", "between"})
DAY_OPS = frozenset({"within_next_days", "within_last_days"})
NO_VALUE = frozenset({"exists", "missing"})
CONSENT_STATES = (*(str(s) for s in ConsentState), NO_CONSENT)
PURPOSES = tuple(str(p) for p in Purpose)
# Shown next to the operator list: what each operator wants in the value box.
OP_HINTS = {
    "in": "comma-separated values",
    "not_in": "comma-separated values",
    "between": "low, high",
    "within_next_days": "a number of days",
    "within_last_days": "a number of days",
    "exists": "no value",
    "missing": "no value",
    "is": "true or false",
}


class BuildError(Exception):
    """What a person can act on: a field and a message, shown in the page."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def op_groups(defs: Mapping[str, AttributeDef]) -> list[tuple[str, list[str]]]:
    """The operators by attribute type (and for sealed, sensitive attributes), each group
    labelled with the attributes it applies to: the form's ``<optgroup>``s."""
    groups: list[tuple[str, list[str]]] = []
    for t in AttrType:
        names = [n for n, d in sorted(defs.items()) if d.type is t and d.phi_class is not PhiClass.SENSITIVE]
        if names:
            groups.append((f"{t} ({', '.join(names)})", sorted(OPS[t])))
    sealed = sorted(n for n, d in defs.items() if d.phi_class is PhiClass.SENSITIVE)
    if sealed:
        groups.append((f"sensitive ({', '.join(sealed)})", sorted(SENSITIVE_OPS)))
    return groups


def ops_for(d: AttributeDef) -> list[str]:
    return sorted(SENSITIVE_OPS if d.phi_class is PhiClass.SENSITIVE else OPS[d.type])


def parse_rule(text: str) -> Any:
    """The advanced JSON box: ``None`` when empty, else the parsed value (any JSON: the
    compiler says what is wrong with its shape)."""
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_RULE_TEXT:
        raise BuildError("rule", f"the rule is larger than {MAX_RULE_TEXT // 1024} KiB")
    try:
        return without_nul(json.loads(text))  # "\u0000" in the JSON: PostgreSQL refuses NUL
    except json.JSONDecodeError as exc:
        raise BuildError("rule", f"is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise BuildError("rule", "nests too deeply") from None
    except ValueError as exc:
        raise BuildError("rule", str(exc)) from None


def _days(raw: str, field: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise BuildError(field, "must be a whole number of days") from None


def _value(op: str, raw: str) -> Any:
    if op in NO_VALUE:
        return None
    if op in DAY_OPS:
        return _days(raw, "value")
    if op in LIST_OPS:
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if not parts:
            raise BuildError("value", "give one or more comma-separated values")
        return parts
    if not raw.strip():
        raise BuildError("value", "give a value for this operator")
    return raw.strip()


def leaf(form: Mapping[str, str]) -> dict[str, Any]:
    """One condition from the structured fields (names, not checked against declarations)."""
    kind = form.get("kind", "")
    if kind == "attr":
        name, op = form.get("attr", ""), form.get("op", "")
        if not name:
            raise BuildError("attr", "choose an attribute")
        out: dict[str, Any] = {"attr": name, "op": op}
        value = _value(op, form.get("value", ""))
        if value is not None:
            out["value"] = value
        return out
    if kind == "consent":
        return {"consent": form.get("purpose", ""), "channel": "email", "state": form.get("state", "")}
    if kind == "list":
        name = form.get("list", "").strip()
        if not name:
            raise BuildError("list", "choose a list")
        return {"list": name}
    if kind == "engaged":
        return {
            "engaged": form.get("engaged", ""),
            "within_days": _days(form.get("within_days", "30"), "within_days"),
        }
    raise BuildError("kind", f"choose one of {', '.join(KINDS)}")


def combine(rule: Any, part: dict[str, Any], how: str, negate: bool) -> dict[str, Any]:
    """Add ``part`` to ``rule``: into its top group when that group is ``how`` already,
    else as a new ``how`` group of the two — so all/any nest as the person builds them."""
    if how not in COMBINE:
        raise BuildError("combine", "choose all or any")
    if negate:
        part = {"not": part}
    if rule is None:
        return part
    if isinstance(rule, dict) and list(rule) == [how] and isinstance(rule[how], list):
        return {how: [*rule[how], part]}
    return {how: [rule, part]}


def segment_name(raw: str) -> str:
    name = raw.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise BuildError("name", f"give the segment a name of 1–{NAME_MAX} characters")
    return name


# Bidirectional controls (embeddings, overrides, isolates, marks): in a name they can reorder
# the text around them ("Trojan Source").  Where ``<bdi>`` cannot go (an ``<option>``, the
# ``<title>``, a textarea) they are made visible instead.
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_VISIBLE = {ord(c): "\ufffd" for c in BIDI}
_ESCAPED = {ord(c): f"\\u{ord(c):04x}" for c in BIDI}


def inert(text: str) -> str:
    """``text`` with each bidirectional control replaced by U+FFFD (a visible mark)."""
    return text.translate(_VISIBLE)


def pretty(value: Any, indent: int | None = 2) -> str:
    """JSON for a textarea: readable, with bidirectional controls as ``\\uXXXX`` escapes (the
    same string once parsed, but inert on screen)."""
    return "" if value is None else json.dumps(value, indent=indent, ensure_ascii=False).translate(_ESCAPED)
