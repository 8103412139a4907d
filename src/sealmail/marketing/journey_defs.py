"""A journey definition's grammar: the trigger, the steps and their bounds, checked on save.

Jumps (a condition's ``else``, a wait-until's ``timeout``) go forward only, so a journey
cannot loop; names are bounded; an attribute a step writes is declared and not sensitive.
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


def bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"field": field, "message": message}])


def validate(definition: dict[str, Any], defs: dict[str, attrs.AttributeDef]) -> None:
    """Check the shape, bounds and forward-only jumps (rules are compiled when saved)."""
    try:
        _validate(definition, defs)
    except (TypeError, ValueError, AttributeError, KeyError):
        # A value of the wrong JSON type somewhere (a list for a name, text for hours).
        raise bad("definition", "does not follow the journey grammar (see the docs)") from None


def _validate(definition: dict[str, Any], defs: dict[str, attrs.AttributeDef]) -> None:
    trigger = definition.get("trigger")
    if not isinstance(trigger, dict) or trigger.get("type") not in TRIGGERS:
        raise bad("trigger.type", f"use one of {', '.join(sorted(TRIGGERS))}")
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
        if kind == "send":
            _check_send(body, i)
        if kind == "wait" and not (
            isinstance(body, dict) and 0 < float(body.get("hours", 0)) <= MAX_WAIT_HOURS
        ):
            raise bad(f"steps[{i}].wait.hours", f"a number of hours, up to {MAX_WAIT_HOURS}")
        if kind == "condition":
            other = body.get("else", "exit") if isinstance(body, dict) else None
            if not _forward(other, i, len(steps)):
                raise bad(f"steps[{i}].condition.else", "exit, or the index of a later step")
        if kind == "wait_until":
            _check_wait_until(body, i, len(steps))
        if kind == "webhook" and not (isinstance(body, dict) and len(str(body.get("label", ""))) <= MAX_NAME):
            raise bad(
                f"steps[{i}].webhook", f"an object with an optional label of up to {MAX_NAME} characters"
            )
        if kind == "update_attribute":
            d = defs.get(str(body.get("name"))) if isinstance(body, dict) else None
            if d is None or d.phi_class is PhiClass.SENSITIVE:
                raise bad(f"steps[{i}].update_attribute.name", "a declared, non-sensitive attribute")


def _forward(target: Any, i: int, n: int) -> bool:
    """``exit``, or a jump to a later step (journeys cannot loop)."""
    return target == "exit" or (isinstance(target, int) and not isinstance(target, bool) and i < target <= n)


def _check_wait_until(body: Any, i: int, n: int) -> None:
    event = body.get("event") if isinstance(body, dict) else None
    if not isinstance(event, str) or not 0 < len(event) <= MAX_NAME:
        raise bad(f"steps[{i}].wait_until.event", f"an event name of 1–{MAX_NAME} characters")
    if not 0 < float(body.get("hours", 0)) <= MAX_WAIT_HOURS:
        raise bad(f"steps[{i}].wait_until.hours", f"a timeout in hours, up to {MAX_WAIT_HOURS}")
    if not _forward(body.get("timeout", "exit"), i, n):
        raise bad(f"steps[{i}].wait_until.timeout", "exit, or the index of a later step")


def _check_send(body: Any, i: int) -> None:
    if not (
        isinstance(body, dict)
        and body.get("purpose") in set(Purpose)
        and isinstance(body.get("template"), str)
        and body["template"]
        and isinstance(body.get("from"), str)
        and body["from"]
    ):
        raise bad(f"steps[{i}].send", "needs a template, a purpose and a from address")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise bad(f"steps[{i}].send.version", "a template version number (left out: the newest, pinned)")
