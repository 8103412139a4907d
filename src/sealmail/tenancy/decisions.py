"""The decisions register: which changes weaken protection, and the reason each one needs.

``weakenings(before, after)`` compares two versions of a tenant's settings and names every
protective setting that got weaker (the portal no longer forced, a DLP action lowered, a
stream's TLS level lowered …).  A change that weakens anything is saved only with a
written reason, and ``Decisions.recorder(reason)`` writes one register row per weakened
setting plus an audit entry inside the transaction that saves the settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.errors import ValidationFailed
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.tenancy.tables import console_decisions

# DLP actions from weakest to strongest (dlp/rules.py Action values).
DLP_RANK = {"none": 0, "require_encryption": 1, "portal_only": 2, "quarantine": 3, "block": 4}
# SecureLine switches that protect when on.
PROTECTIVE_FLAGS = ("force_portal", "require_message_encryption_on_phi", "portal_require_passphrase")
MIN_REASON = 10

Also = Callable[[Connection, str, str, dict[str, Any], dict[str, Any]], None]


def _get(settings: dict[str, Any], *path: str) -> Any:
    node: Any = settings
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _dlp_weakenings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out: list[str] = []
    b, a = before.get("dlp") or {}, after.get("dlp") or {}
    # No ``dlp`` setting means DLP on with its defaults (dlp/screening.policy_from_settings).
    if b.get("enabled", True) is not False and a.get("enabled", True) is False:
        return ["dlp.enabled"]
    default = "require_encryption"
    if DLP_RANK.get(a.get("default_action", default), 0) < DLP_RANK.get(b.get("default_action", default), 0):
        out.append("dlp.default_action")
    b_actions, a_actions = b.get("actions") or {}, a.get("actions") or {}
    for detector, action in sorted(b_actions.items()):
        now = a_actions.get(detector, a.get("default_action", default))
        if DLP_RANK.get(now, 0) < DLP_RANK.get(action, 0):
            out.append(f"dlp.actions.{detector}")
    return out


def weakenings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The protective settings ``after`` holds weaker than ``before`` (dotted names)."""
    out = [
        f"secureline.{flag}"
        for flag in PROTECTIVE_FLAGS
        if _get(before, "secureline", flag) and not _get(after, "secureline", flag)
    ]
    if (
        _get(after, "secureline", "portal_weak_notice")
        == "allow_email_code"
        != _get(before, "secureline", "portal_weak_notice")
    ):
        out.append("secureline.portal_weak_notice")
    out += _dlp_weakenings(before, after)
    b_tls, a_tls = before.get("tls_policy") or {}, after.get("tls_policy") or {}
    for stream, level in sorted(b_tls.items()):
        now = a_tls.get(stream)
        if now is None or TlsPolicy(now).rank < TlsPolicy(level).rank:
            out.append(f"tls_policy.{stream}")
    return out


REASON_DOC = (
    "Why, when the change weakens a protective setting (the portal no longer forced, DLP off or a "
    f"lower action, a stream's TLS level lowered …): at least {MIN_REASON} characters, kept in the "
    "decisions register. A weakening without one is refused (422)."
)


def require_reason(before: dict[str, Any], after: dict[str, Any], reason: str | None) -> list[str]:
    """The weakenings ``after`` makes; refused (422) unless a written reason comes with them."""
    weaker = weakenings(before, after)
    if weaker and len((reason or "").strip()) < MIN_REASON:
        message = (
            f"this change weakens {', '.join(weaker)}: give a reason of at least {MIN_REASON} "
            "characters (kept in the decisions register)"
        )
        raise ValidationFailed([{"field": "reason", "message": message}])
    return weaker


@dataclass(frozen=True, slots=True)
class Decision:
    """One row of the decisions register: a protective setting weakened, and why."""

    id: str
    tenant_id: str
    setting: str  # e.g. "secureline.force_portal"
    before: Any  # the setting's JSON value before and after
    after: Any
    reason: str
    actor: str
    created_at: datetime


class Decisions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def recorder(self, reason: str, also: Also | None = None) -> Also:
        """An ``update_settings(also=…)`` hook: one register row and audit entry per weakening."""

        def record(
            conn: Connection, tenant_id: str, actor: str, before: dict[str, Any], after: dict[str, Any]
        ) -> None:
            if also is not None:
                also(conn, tenant_id, actor, before, after)
            now = datetime.now(UTC)
            for setting in weakenings(before, after):
                path = setting.split(".")
                row_id = new_id("dec")
                conn.execute(
                    sa.insert(console_decisions).values(
                        id=row_id, tenant_id=tenant_id, setting=setting, before=_get(before, *path),
                        after=_get(after, *path), reason=reason, actor=actor, created_at=now,
                    )
                )  # fmt: skip
                audit.append(
                    conn, action=AuditAction.DECISION_RECORDED, actor=actor, tenant_id=tenant_id,
                    target=row_id, details={"setting": setting, "reason": reason},
                )  # fmt: skip

        return record

    def register(
        self, tenant_id: str, limit: int | None = 200, until: datetime | None = None
    ) -> list[Decision]:
        """The newest first; ``until`` leaves out later ones (an evidence pack's period end),
        ``limit`` None keeps them all (the pack's register is whole, never a first page)."""
        query = sa.select(console_decisions).where(console_decisions.c.tenant_id == tenant_id)
        if until is not None:
            query = query.where(console_decisions.c.created_at < until)
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                query.order_by(console_decisions.c.created_at.desc(), console_decisions.c.id.desc()).limit(
                    limit
                )
            ).all()
        return [Decision(*r) for r in rows]
