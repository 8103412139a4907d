"""DLP at intake: the tenant's rules applied to each submitted message.

The tenant's rules live in its settings under ``dlp`` (see ``TENANT_DLP_KEYS``); without
any, PHI found anywhere requires message-level encryption (pgp, smime or the portal —
not TLS alone), and parts that cannot be read (images, encrypted PDFs) require nothing.
Only detector names and places are kept, never matched values.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sealmail.dlp import scan_message
from sealmail.dlp.rules import Action, DlpPolicy, DlpPolicyError
from sealmail.errors import ValidationFailed
from sealmail.messages.service import Screening, Submission
from sealmail.tenancy.service import Tenancy

TENANT_DLP_KEYS = (
    "enabled",
    "mrn_patterns",
    "keywords",
    "actions",
    "default_action",
    "thresholds",
    "unscanned_action",
)
POLICY_TTL = 30.0


def policy_from_settings(raw: dict[str, Any] | None) -> DlpPolicy | None:
    """The DLP policy a tenant configured; None when DLP is switched off."""
    raw = dict(raw or {})
    unknown = set(raw) - set(TENANT_DLP_KEYS)
    if unknown:
        raise ValidationFailed([{"field": f"dlp.{sorted(unknown)[0]}", "message": "unknown DLP setting"}])
    if raw.pop("enabled", True) is False:
        return None
    try:
        return DlpPolicy(
            mrn_patterns=_strings(raw, "mrn_patterns"),
            keywords=_strings(raw, "keywords"),
            actions={k: Action(v) for k, v in _mapping(raw, "actions").items()},
            default_action=Action(raw.get("default_action", Action.REQUIRE_ENCRYPTION)),
            thresholds=_mapping(raw, "thresholds"),
            unscanned_action=Action(raw.get("unscanned_action", Action.NONE)),
        )
    except (DlpPolicyError, ValueError, TypeError) as exc:
        raise ValidationFailed([{"field": "dlp", "message": str(exc)}]) from exc


# The settings are JSON a tenant sent (``PATCH /v1/tenant/policy``'s ``dlp`` is free-form) or
# TOML: each value's shape is checked here, where a nested list among the keywords had
# reached ``str.strip`` as an AttributeError (a 500, and nothing a client could act on).
def _strings(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed([{"field": f"dlp.{key}", "message": "must be a list of strings"}])
    return tuple(value)


def _mapping(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ValidationFailed([{"field": f"dlp.{key}", "message": "must be an object"}])
    return value


class Screener:
    """Callable used by ``Messages.submit``; policies are cached per tenant for a short while."""

    def __init__(self, tenancy: Tenancy) -> None:
        self.tenancy = tenancy
        self._cache: dict[str, tuple[float, DlpPolicy | None]] = {}
        self._lock = threading.Lock()

    def policy(self, tenant_id: str) -> DlpPolicy | None:
        hit = self._cache.get(tenant_id)
        if hit is not None and time.monotonic() - hit[0] < POLICY_TTL:
            return hit[1]
        settings = self.tenancy.get_tenant(tenant_id).settings
        policy = policy_from_settings(settings.get("dlp"))
        with self._lock:
            self._cache[tenant_id] = (time.monotonic(), policy)
        return policy

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._cache.pop(tenant_id, None)

    def __call__(self, tenant_id: str, sub: Submission) -> Screening:
        policy = self.policy(tenant_id)
        if policy is None:
            return Screening("none")
        verdict = scan_message(sub.raw, policy, head=sub.head)
        findings = tuple(
            {"detector": f.detector, "location": f.location, "count": f.count} for f in verdict.findings
        )
        return Screening(str(verdict.action), findings, verdict.reason if findings else "")
