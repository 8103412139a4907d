"""A journey definition's grammar: the trigger, the steps and their bounds, checked on save.

Jumps (a condition's ``else``, a wait-until's ``timeout``) go forward only, so a journey
cannot loop; names are bounded; an attribute a step writes is declared and not sensitive.
Every value the runner reads later is checked here for its type and range, and no other key
is taken: a value that only failed when a contact reached its step (a ``quiet_start`` of
"x", an ``update_attribute`` value of the wrong type, a list name of a megabyte) failed that
step for every contact, every run, and an unread key was stored for nothing.
Segment rules inside conditions are compiled (and their PHI classes checked) by the
service when it saves, not here.
"""

from __future__ import annotations

from typing import Any

from sealmail.domain.marketing import PhiClass, Purpose
from sealmail.errors import ValidationFailed
from sealmail.marketing import attributes as attrs
from sealmail.marketing.journey_dates import MODES
from sealmail.marketing.journey_events import TRIGGER_FIELD

MAX_STEPS = 20
MAX_WAIT_HOURS = 24 * 366
TRIGGERS = frozenset({"api_event", "list_join", "date_attribute", "form_submission"})
STEP_KINDS = frozenset(
    {"send", "wait", "wait_until", "condition", "add_to_list", "update_attribute", "webhook", "exit"}
)
MAX_NAME = 60
MAX_LIST_NAME = 100  # ListIn.name
MAX_TEMPLATE_NAME = 100  # VariantIn.template
MAX_FROM = 400  # CampaignIn.from
MAX_VERSION = 2**31 - 1  # an INTEGER column on PostgreSQL
TRIGGER_KEYS = {
    "api_event": {"type", "event"},
    "list_join": {"type", "list"},
    "form_submission": {"type", "form"},
    "date_attribute": {"type", "attr", "days_before", "mode"},
}
STEP_KEYS = {
    "send": {"template", "purpose", "from", "version", "remunerated", "quiet_start", "quiet_end"},
    "wait": {"hours"},
    "wait_until": {"event", "hours", "timeout"},
    "condition": {"rule", "else"},
    "update_attribute": {"name", "value"},
    "webhook": {"label"},
    "exit": set(),
}


def bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"field": field, "message": message}])


def validate(definition: dict[str, Any], defs: dict[str, attrs.AttributeDef]) -> None:
    """Check the shape, bounds and forward-only jumps (rules are compiled when saved)."""
    try:
        _validate(definition, defs)
    except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError):
        # A value of the wrong JSON type somewhere (a list for a name, text for hours).
        raise bad("definition", "does not follow the journey grammar (see the docs)") from None


def _validate(definition: dict[str, Any], defs: dict[str, attrs.AttributeDef]) -> None:
    _only(definition, {"trigger", "steps"}, "definition")
    trigger = definition.get("trigger")
    if not isinstance(trigger, dict) or trigger.get("type") not in TRIGGERS:
        raise bad("trigger.type", f"use one of {', '.join(sorted(TRIGGERS))}")
    _only(trigger, TRIGGER_KEYS[trigger["type"]], "trigger")
    if trigger["type"] == "date_attribute":
        d = defs.get(str(trigger.get("attr")))
        if d is None or d.type is not attrs.AttrType.DATE:
            raise bad("trigger.attr", "must name a declared date attribute")
        days = trigger.get("days_before", 0)
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 366:
            raise bad("trigger.days_before", "a whole number of days, 0–366")
        if trigger.get("mode", "exact") not in MODES:
            raise bad("trigger.mode", f"use one of {', '.join(MODES)}")
    if trigger["type"] in ("api_event", "list_join", "form_submission"):
        field = TRIGGER_FIELD[trigger["type"]]
        value = trigger.get(field)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
            raise bad(f"trigger.{field}", f"a name of 1–{MAX_NAME} characters")
    steps = definition.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise bad("steps", f"1–{MAX_STEPS} steps")
    for i, step in enumerate(steps):
        kind = next(iter(step), None) if isinstance(step, dict) and len(step) == 1 else None
        if kind not in STEP_KINDS:
            raise bad(f"steps[{i}]", f"one of {', '.join(sorted(STEP_KINDS))}")
        body = step[kind]
        if kind == "add_to_list":
            if not isinstance(body, str) or not 0 < len(body) <= MAX_LIST_NAME:
                raise bad(f"steps[{i}].add_to_list", f"a list name of 1–{MAX_LIST_NAME} characters")
            continue
        if not isinstance(body, dict):
            raise bad(f"steps[{i}].{kind}", "must be an object")
        _only(body, STEP_KEYS[kind], f"steps[{i}].{kind}")
        if kind == "send":
            _check_send(body, i)
        if kind == "wait" and not _hours(body.get("hours")):
            raise bad(f"steps[{i}].wait.hours", f"a number of hours, up to {MAX_WAIT_HOURS}")
        if kind == "condition":
            other = body.get("else", "exit")
            if not _forward(other, i, len(steps)):
                raise bad(f"steps[{i}].condition.else", "exit, or the index of a later step")
        if kind == "wait_until":
            _check_wait_until(body, i, len(steps))
        label = body.get("label", "")
        if kind == "webhook" and not (isinstance(label, str) and len(label) <= MAX_NAME):
            raise bad(
                f"steps[{i}].webhook", f"an object with an optional label of up to {MAX_NAME} characters"
            )
        if kind == "update_attribute":
            _check_update(body, defs, i)


def _only(body: dict[str, Any], keys: set[str], path: str) -> None:
    extra = set(body) - keys
    if extra:
        # The keys are not echoed: a client's key can be any length.
        raise bad(path, f"has {len(extra)} unexpected key(s); use {', '.join(sorted(keys)) or 'none'}")


def _hours(value: Any) -> bool:
    """A JSON number of hours in range; compared as it is (``float`` of a 400-digit integer
    raised OverflowError, a 500; text such as "5" was taken and read again at every run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return 0 < value <= MAX_WAIT_HOURS


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_update(body: dict[str, Any], defs: dict[str, attrs.AttributeDef], i: int) -> None:
    d = defs.get(body["name"]) if isinstance(body.get("name"), str) else None
    if d is None or d.phi_class is PhiClass.SENSITIVE:
        raise bad(f"steps[{i}].update_attribute.name", "a declared, non-sensitive attribute")
    value = body.get("value")
    # The runner coerces the value for each contact: one that cannot be coerced failed there.
    try:
        if value is None or isinstance(value, (list, dict)):
            raise ValueError("needs a value of the attribute's type")
        attrs.coerce(d, value)
    except ValueError as exc:
        raise bad(f"steps[{i}].update_attribute.value", str(exc)) from None


def _forward(target: Any, i: int, n: int) -> bool:
    """``exit``, or a jump to a later step (journeys cannot loop)."""
    return target == "exit" or (isinstance(target, int) and not isinstance(target, bool) and i < target <= n)


def _check_wait_until(body: dict[str, Any], i: int, n: int) -> None:
    event = body.get("event")
    if not isinstance(event, str) or not 0 < len(event) <= MAX_NAME:
        raise bad(f"steps[{i}].wait_until.event", f"an event name of 1–{MAX_NAME} characters")
    if not _hours(body.get("hours")):
        raise bad(f"steps[{i}].wait_until.hours", f"a timeout in hours, up to {MAX_WAIT_HOURS}")
    if not _forward(body.get("timeout", "exit"), i, n):
        raise bad(f"steps[{i}].wait_until.timeout", "exit, or the index of a later step")


def _check_send(body: dict[str, Any], i: int) -> None:
    if not (
        body.get("purpose") in set(Purpose)
        and isinstance(body.get("template"), str)
        and 0 < len(body["template"]) <= MAX_TEMPLATE_NAME
        and isinstance(body.get("from"), str)
        and 0 < len(body["from"]) <= MAX_FROM
    ):
        raise bad(f"steps[{i}].send", "needs a template, a purpose and a from address")
    version = body.get("version")
    if version is not None and not _whole(version, 1, MAX_VERSION):
        raise bad(f"steps[{i}].send.version", "a template version number (left out: the newest, pinned)")
    for key, default in (("quiet_start", 21), ("quiet_end", 8)):
        if not _whole(body.get(key, default), 0, 23):
            raise bad(f"steps[{i}].send.{key}", "a local hour, 0–23")
    if not isinstance(body.get("remunerated", False), bool):
        raise bad(f"steps[{i}].send.remunerated", "true or false")
