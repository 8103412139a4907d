"""Issue 13: one name for each state, event type and audit action, spelled in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sealmail.audit import AuditAction
from sealmail.store.events import EventType

SRC = Path(__file__).resolve().parents[2] / "src" / "sealmail"
AUDIT_NAME = re.compile(r"^[a-z_]+:[a-z_]+$")  # ``object:verb``
EVENT_NAME = re.compile(r"^(message|recipient|portal|webhook|form|sms)\.[a-z_]+$")  # ``object.verb``


def _str_enums() -> list[tuple[Path, str, list[str]]]:
    """Every ``StrEnum`` in the server with the string values of its members."""
    found = []
    for path in SRC.rglob("*.py"):
        if "client" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            if not any(isinstance(b, ast.Attribute) and b.attr == "StrEnum" for b in node.bases):
                continue
            values = [
                st.value.value
                for st in node.body
                if isinstance(st, ast.Assign)
                and isinstance(st.value, ast.Constant)
                and isinstance(st.value.value, str)
            ]
            found.append((path, node.name, values))
    return found


def test_audit_names_live_in_one_enum() -> None:
    elsewhere = [
        f"{path.relative_to(SRC)}:{name}"
        for path, name, values in _str_enums()
        if name != "AuditAction" and any(AUDIT_NAME.match(v) for v in values)
    ]
    assert elsewhere == [], f"audit names outside audit.AuditAction: {elsewhere}"


def test_event_types_live_in_one_enum() -> None:
    elsewhere = [
        f"{path.relative_to(SRC)}:{name}"
        for path, name, values in _str_enums()
        if name != "EventType" and any(EVENT_NAME.match(v) for v in values)
    ]
    assert elsewhere == [], f"event types outside store.events.EventType: {elsewhere}"


def test_stored_names_are_unchanged() -> None:
    # Stored audit entries and events, and the clients that read them, keep their strings.
    assert str(AuditAction.FILE_DOWNLOADED) == "file:downloaded"
    assert str(AuditAction.PORTAL_WEAK_NOTICE_POLICY_CHANGED) == "portal:weak_notice_policy_changed"
    assert str(AuditAction.SUPPRESSIONS_BYPASSED) == "message:suppressions_bypassed"
    assert str(AuditAction.WEBHOOK_ENDPOINT_SECRET_ROTATED) == "webhook_endpoint:secret_rotated"
    assert str(AuditAction.BULK_JOB_FINISHED) == "bulk_job:finished"
    assert str(EventType.PORTAL_CODE_REFUSED) == "portal.code_refused"
    assert str(EventType.WEBHOOK_TEST) == "webhook.test"
    assert len({a.value for a in AuditAction}) == len(AuditAction)
    assert len({e.value for e in EventType}) == len(EventType)


def test_no_class_named_outcome_twice() -> None:
    names = [
        node.name
        for path in SRC.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    ]
    assert names.count("Outcome") <= 1
