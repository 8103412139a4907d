"""Segment rules: a typed tree compiled to a bound SQLAlchemy expression over contacts.

The tree is JSON with a fixed grammar; every name in it is checked against the tenant's
declared attributes, every value is coerced to the attribute's type and bound as a
parameter.  Nothing the user writes becomes SQL text, a function name or a JSON path:
an attribute name reaches the JSON lookup only after it matched a declaration, and then
as a bound value.  Sizes are bounded (``MAX_DEPTH``, ``MAX_LEAVES``, ``MAX_VALUES`` a leaf)
and so is the SQL a whole rule becomes: ``MAX_RULE_VALUES`` values in all, of which at most
``MAX_DOMAINS`` email domains (each one its own ``LIKE``, chained by ``OR``).  Fifty leaves of
200 domains each were 10,000 ``LIKE``s a contact: past SQLite's expression depth (a 500 on
preview, and a saved segment no campaign could expand) and seconds of PostgreSQL CPU per
few rows.

Grammar::

    {"all": [rule, …]}   {"any": [rule, …]}   {"not": rule}
    {"attr": name, "op": op, "value": v}      ops by type, see ``OPS``
    {"contact": "status" | "tz" | "email_domain", "op": "eq" | "in", "value": v}
    {"consent": purpose, "channel": "email", "state": state}   a ConsentState, or "none"
    {"list": name}
    {"engaged": "open" | "click", "within_days": n}   human events only (machine opens excluded)

Sensitive attributes are sealed; they support ``eq``, ``neq``, ``in``, ``exists`` and
``missing`` through their blind tokens.  The compiler reports the PHI classes the rule
touches (consent and engagement leaves count as ``clinical``: the fact of being a patient
who engaged is PHI) and a label per leaf, without values, to say why a contact matched —
``not: <label>`` for a leaf under a ``not`` that was false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from sealmail.domain.marketing import Channel, ConsentState, PhiClass, Purpose
from sealmail.errors import ValidationFailed
from sealmail.marketing.attributes import AttributeDef, AttrType, coerce
from sealmail.marketing.contacts import blind_token
from sealmail.marketing.tables import mkt_consent_current as cur
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.marketing.tables import mkt_list_members as lm
from sealmail.marketing.tables import mkt_lists as ls
from sealmail.marketing.tables import mkt_sends
from sealmail.store.events import EventType, by_a_person
from sealmail.store.tables import events

MAX_DEPTH = 6
MAX_LEAVES = 50
MAX_VALUES = 200
MAX_RULE_VALUES = 1000
# SQLite refuses an expression deeper than 1000; each domain is one link of an OR chain.
MAX_DOMAINS = 200
MAX_DAYS = 3650
# A consent rule's state for "no consent row at all": a word of the segment grammar, never stored.
NO_CONSENT = "none"

_COMMON = {"exists", "missing"}
OPS: dict[AttrType, frozenset[str]] = {
    AttrType.TEXT: frozenset({"eq", "neq", "in", "not_in", "contains", "starts_with", *_COMMON}),
    AttrType.CHOICE: frozenset({"eq", "neq", "in", "not_in", *_COMMON}),
    AttrType.NUMBER: frozenset({"eq", "neq", "lt", "lte", "gt", "gte", "between", *_COMMON}),
    AttrType.DATE: frozenset(
        {"eq", "before", "after", "between", "within_next_days", "within_last_days", *_COMMON}
    ),
    AttrType.BOOLEAN: frozenset({"is", *_COMMON}),
}
SENSITIVE_OPS = frozenset({"eq", "neq", "in", *_COMMON})
ENGAGEMENT = {"open": EventType.OPENED, "click": EventType.CLICKED}


@dataclass
class Compiled:
    where: ColumnElement[bool]
    classes: set[PhiClass] = field(default_factory=set)
    leaves: list[tuple[str, ColumnElement[bool]]] = field(default_factory=list)
    values: int = 0
    domains: int = 0


@dataclass(frozen=True, slots=True)
class Context:
    tenant_id: str
    defs: dict[str, AttributeDef]
    blind_key: Callable[[], bytes]
    now: datetime


class _Bad(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def compile_rule(rule: Any, ctx: Context) -> Compiled:
    """The rule as a WHERE clause over ``mkt_contacts`` (tenant scope added by the caller)."""
    out = Compiled(sa.true())
    try:
        out.where = _node(_names_only(rule), ctx, out, "rule", 1)
    except _Bad as bad:
        raise ValidationFailed([{"field": bad.path, "message": bad.message}]) from None
    return out


_NAME_KEYS = frozenset({"attr", "op", "contact", "consent", "channel", "state", "engaged"})


def _names_only(rule: Any, path: str = "rule", depth: int = 1) -> Any:
    """Refuse a non-string where the grammar names something (an operator, an attribute…),
    before any lookup: a list or object there is a 422, never a crash."""
    if depth > MAX_DEPTH + 1:
        raise _Bad(path, f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(rule, dict):
        for key, value in rule.items():
            if key in _NAME_KEYS and not isinstance(value, str):
                raise _Bad(f"{path}.{key}", "must be a string")
            if key in ("all", "any") and isinstance(value, list):
                for i, part in enumerate(value[: MAX_LEAVES + 1]):
                    _names_only(part, f"{path}.{key}[{i}]", depth + 1)
            elif key == "not":
                _names_only(value, f"{path}.not", depth + 1)
    return rule


def _node(
    rule: Any, ctx: Context, out: Compiled, path: str, depth: int, negated: bool = False
) -> ColumnElement[bool]:
    """The rule's expression; each leaf is also recorded with its reason flag: the leaf
    itself, or under an odd number of ``not`` its negation (``not: <label>``), so a contact
    a ``not`` let in says why too."""
    if depth > MAX_DEPTH:
        raise _Bad(path, f"nests deeper than {MAX_DEPTH} levels")
    if not isinstance(rule, dict) or len(rule) == 0:
        raise _Bad(path, "must be an object")
    if "all" in rule or "any" in rule:
        key = "all" if "all" in rule else "any"
        _only(rule, {key}, path)
        parts = rule[key]
        if not isinstance(parts, list) or not parts:
            raise _Bad(f"{path}.{key}", "must be a non-empty list")
        exprs = [_node(p, ctx, out, f"{path}.{key}[{i}]", depth + 1, negated) for i, p in enumerate(parts)]
        return sa.and_(*exprs) if key == "all" else sa.or_(*exprs)
    if "not" in rule:
        _only(rule, {"not"}, path)
        return sa.not_(_node(rule["not"], ctx, out, f"{path}.not", depth + 1, not negated))
    if len(out.leaves) >= MAX_LEAVES:
        raise _Bad(path, f"a segment has at most {MAX_LEAVES} conditions")
    label, expr = _leaf(rule, ctx, out, path)
    out.leaves.append((f"not: {label}", sa.not_(expr)) if negated else (label, expr))
    return expr


def _only(rule: dict[str, Any], keys: set[str], path: str) -> None:
    extra = set(rule) - keys
    if extra:
        raise _Bad(path, f"unexpected keys {sorted(extra)}")


def _leaf(rule: dict[str, Any], ctx: Context, out: Compiled, path: str) -> tuple[str, ColumnElement[bool]]:
    if "attr" in rule:
        _only(rule, {"attr", "op", "value"}, path)
        return _attr(rule, ctx, out, path)
    if "contact" in rule:
        _only(rule, {"contact", "op", "value"}, path)
        return _contact(rule, out, path)
    if "consent" in rule:
        _only(rule, {"consent", "channel", "state"}, path)
        out.classes.add(PhiClass.CLINICAL)
        return _consent(rule, ctx, path)
    if "list" in rule:
        _only(rule, {"list"}, path)
        name = _text(rule["list"], f"{path}.list")
        member = sa.exists().where(
            lm.c.contact_id == ct.c.id,
            lm.c.tenant_id == ctx.tenant_id,
            lm.c.list_id == ls.c.id,
            ls.c.tenant_id == ctx.tenant_id,
            ls.c.name == name,
        )
        return "list", member
    if "engaged" in rule:
        _only(rule, {"engaged", "within_days"}, path)
        out.classes.add(PhiClass.CLINICAL)
        return _engaged(rule, ctx, path)
    raise _Bad(path, "is not a rule: use all, any, not, attr, contact, consent, list or engaged")


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise _Bad(path, "must be a string of 1–200 characters")
    return value


def _values(value: Any, path: str, out: Compiled) -> list[Any]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_VALUES:
        raise _Bad(path, f"must be a list of 1–{MAX_VALUES} values")
    out.values += len(value)
    if out.values > MAX_RULE_VALUES:
        raise _Bad(path, f"a segment has at most {MAX_RULE_VALUES} values in all its conditions")
    return value


def _days(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
        raise _Bad(path, f"must be a whole number of days, 0–{MAX_DAYS}")
    return value


def _attr(rule: dict[str, Any], ctx: Context, out: Compiled, path: str) -> tuple[str, ColumnElement[bool]]:
    name = rule["attr"]
    d = ctx.defs.get(name) if isinstance(name, str) else None
    if d is None:
        raise _Bad(f"{path}.attr", "is not a declared attribute")
    op = rule.get("op")
    sensitive = d.phi_class is PhiClass.SENSITIVE
    allowed = SENSITIVE_OPS if sensitive else OPS[d.type]
    if op not in allowed:
        raise _Bad(f"{path}.op", f"use one of {', '.join(sorted(allowed))} for this attribute")
    out.classes.add(d.phi_class)
    label = f"attr:{name}:{op}"
    if sensitive:
        return label, _blind(rule, d, ctx, op, path, out)
    json = ct.c.attrs[name]
    if op in _COMMON:
        return label, (json.as_string().is_not(None) if op == "exists" else json.as_string().is_(None))
    if op in ("in", "not_in"):
        values = [
            _coerced(d, v, f"{path}.value[{i}]")
            for i, v in enumerate(_values(rule.get("value"), f"{path}.value", out))
        ]
        column = _typed(json, d)
        return label, (
            column.in_(values) if op == "in" else sa.and_(column.is_not(None), column.not_in(values))
        )
    if op == "between":
        pair = _values(rule.get("value"), f"{path}.value", out)
        if len(pair) != 2:
            raise _Bad(f"{path}.value", "must be [low, high]")
        low, high = (_coerced(d, v, f"{path}.value[{i}]") for i, v in enumerate(pair))
        return label, _typed(json, d).between(low, high)
    if op in ("within_next_days", "within_last_days"):
        days = _days(rule.get("value"), f"{path}.value")
        today = ctx.now.astimezone(UTC).date()
        low, high = (
            (today, today + timedelta(days=days))
            if op == "within_next_days"
            else (today - timedelta(days=days), today)
        )
        return label, json.as_string().between(low.isoformat(), high.isoformat())
    value = _coerced(d, rule.get("value"), f"{path}.value")
    return label, _compare(_typed(json, d), op, value)


def _coerced(d: AttributeDef, raw: Any, path: str) -> Any:
    if raw is None or isinstance(raw, (list, dict)):
        raise _Bad(path, "needs a value of the attribute's type")
    try:
        return coerce(d, raw)
    except ValueError as exc:
        raise _Bad(path, str(exc)) from None


def _typed(json: Any, d: AttributeDef) -> Any:
    if d.type is AttrType.NUMBER:
        return json.as_float()
    if d.type is AttrType.BOOLEAN:
        return json.as_boolean()
    return json.as_string()


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op in ("eq", "is"):
        return column == value  # type: ignore[no-any-return]
    if op == "neq":
        return sa.and_(column.is_not(None), column != value)
    if op in ("lt", "before"):
        return column < value  # type: ignore[no-any-return]
    if op == "lte":
        return column <= value  # type: ignore[no-any-return]
    if op in ("gt", "after"):
        return column > value  # type: ignore[no-any-return]
    if op == "gte":
        return column >= value  # type: ignore[no-any-return]
    if op == "contains":
        return column.contains(value, autoescape=True)  # type: ignore[no-any-return]
    return column.startswith(value, autoescape=True)  # type: ignore[no-any-return]


def _blind(
    rule: dict[str, Any], d: AttributeDef, ctx: Context, op: str, path: str, out: Compiled
) -> ColumnElement[bool]:
    column: ColumnElement[Any] = ct.c.blind[d.name].as_string()
    if op in _COMMON:
        return column.is_not(None) if op == "exists" else column.is_(None)
    key = ctx.blind_key()
    raw = _values(rule.get("value"), f"{path}.value", out) if op == "in" else [rule.get("value")]
    tokens = [blind_token(key, d.name, _coerced(d, v, f"{path}.value")) for v in raw]
    if op == "in":
        return column.in_(tokens)
    return column == tokens[0] if op == "eq" else sa.and_(column.is_not(None), column != tokens[0])


def _contact(rule: dict[str, Any], out: Compiled, path: str) -> tuple[str, ColumnElement[bool]]:
    name, op = rule["contact"], rule.get("op")
    columns = {"status": ct.c.status, "tz": ct.c.tz, "email_domain": None}
    if name not in columns:
        raise _Bad(f"{path}.contact", "use status, tz or email_domain")
    if op not in ("eq", "in"):
        raise _Bad(f"{path}.op", "use eq or in")
    raw = _values(rule.get("value"), f"{path}.value", out) if op == "in" else [rule.get("value")]
    values = [
        _text(v, f"{path}.value").strip().lower() if name != "tz" else _text(v, f"{path}.value") for v in raw
    ]
    if name == "email_domain":
        out.domains += len(values)
        if out.domains > MAX_DOMAINS:
            raise _Bad(f"{path}.value", f"a segment matches at most {MAX_DOMAINS} email domains in all")
        # The domain part as a bound suffix match: "@" + domain, LIKE-escaped.
        return f"contact:{name}", sa.or_(*(ct.c.email.endswith("@" + v, autoescape=True) for v in values))
    return f"contact:{name}", columns[name].in_(values)  # type: ignore[union-attr]


def _consent(rule: dict[str, Any], ctx: Context, path: str) -> tuple[str, ColumnElement[bool]]:
    purpose, channel, state = rule["consent"], rule.get("channel", "email"), rule.get("state")
    if purpose not in set(Purpose):
        raise _Bad(f"{path}.consent", f"use one of {', '.join(Purpose)}")
    if channel not in set(Channel):
        raise _Bad(f"{path}.channel", f"use one of {', '.join(Channel)}")
    if state not in {*ConsentState, NO_CONSENT}:
        raise _Bad(f"{path}.state", f"use {', '.join(ConsentState)} or {NO_CONSENT}")
    # The tenant as well as the contact: a contact id is one tenant's already, but the
    # subquery then stays inside the tenant whatever plan the database picks.
    scope = (
        cur.c.contact_id == ct.c.id,
        cur.c.tenant_id == ctx.tenant_id,
        cur.c.purpose == purpose,
        cur.c.channel == channel,
    )
    if state == NO_CONSENT:
        return f"consent:{purpose}:{NO_CONSENT}", ~sa.exists().where(*scope)
    return f"consent:{purpose}:{state}", sa.exists().where(*scope, cur.c.state == state)


def _engaged(rule: dict[str, Any], ctx: Context, path: str) -> tuple[str, ColumnElement[bool]]:
    kind = rule["engaged"]
    if kind not in ENGAGEMENT:
        raise _Bad(f"{path}.engaged", "use open or click")
    since = ctx.now - timedelta(days=_days(rule.get("within_days", 30), f"{path}.within_days"))
    human = by_a_person()
    found = sa.exists().where(
        mkt_sends.c.contact_id == ct.c.id,
        events.c.message_id == mkt_sends.c.message_id,
        events.c.tenant_id == ctx.tenant_id,
        events.c.type == str(ENGAGEMENT[kind]),
        events.c.created_at >= since,
        human,
    )
    return f"engaged:{kind}", found
