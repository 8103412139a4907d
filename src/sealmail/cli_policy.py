"""``sealmail policy``: a tenant's protective settings from the command line, and the
decisions register.

The same rule as the console and ``PATCH /v1/tenant/settings`` / ``/v1/tenant/policy``: a
change that weakens a protective setting (the portal no longer forced, DLP off or a lower
action, a stream's TLS level lowered …) is saved only with ``--reason`` (at least
``MIN_REASON`` characters), kept in the decisions register with the change; without one
the command exits 2 and changes nothing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sealmail.cli_base import _services, _tenant, err, friendly, out
from sealmail.dlp.screening import policy_from_settings
from sealmail.domain.portal_factors import WeakNoticePolicy
from sealmail.domain.tls_policy import STREAM_MINIMUM, Stream, TlsPolicy
from sealmail.errors import ValidationFailed
from sealmail.portal.records import audit_weak_notice_change
from sealmail.tenancy.decisions import DLP_RANK, MIN_REASON, PROTECTIVE_FLAGS, Decisions, require_reason

policy_app = typer.Typer(
    no_args_is_help=True,
    help="Protective settings (SecureLine, DLP, TLS per stream) and the decisions register.",
)

ON, OFF = ("on", "true", "yes"), ("off", "false", "no")
SETTINGS_HELP = (
    "secureline.force_portal | secureline.require_message_encryption_on_phi | "
    "secureline.portal_require_passphrase (on/off); secureline.portal_weak_notice "
    "(require_strong_factor/allow_email_code); dlp.enabled (on/off); dlp.default_action and "
    "dlp.actions.<detector> (none, require_encryption, portal_only, quarantine, block); "
    "tls_policy.<stream> (opportunistic, require, require_verified, dane, or default)."
)


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ON or v in OFF:
        return v in ON
    raise ValidationFailed([{"field": "value", "message": f"{value!r}: give on or off"}])


def _choice(value: str, allowed: list[str]) -> str:
    if value not in allowed:
        raise ValidationFailed(
            [{"field": "value", "message": f"{value!r}: give one of {', '.join(allowed)}"}]
        )
    return value


def _tls(stream_name: str, value: str, current: dict[str, Any]) -> dict[str, Any]:
    try:
        stream = Stream(stream_name)
    except ValueError:
        streams = ", ".join(s.value for s in Stream)
        raise ValidationFailed(
            [{"field": "setting", "message": f"no stream {stream_name!r} ({streams})"}]
        ) from None
    merged = dict(current.get("tls_policy") or {})
    if value == "default":
        merged.pop(str(stream), None)
    else:
        level = TlsPolicy(_choice(value, [str(t) for t in TlsPolicy]))
        if level.rank < STREAM_MINIMUM[stream].rank:
            message = f"{level} is below the {stream} stream's minimum ({STREAM_MINIMUM[stream]})"
            raise ValidationFailed([{"field": "value", "message": message}])
        merged[str(stream)] = str(level)
    return {"tls_policy": merged or None}


def changes_for(setting: str, value: str, current: dict[str, Any]) -> dict[str, Any]:
    """The settings change ``setting=value`` makes (a whole top-level section, merged)."""
    section, _, rest = setting.partition(".")
    if section == "tls_policy" and rest:
        return _tls(rest, value, current)
    merged = dict(current.get(section) or {})
    if section == "secureline" and rest in PROTECTIVE_FLAGS:
        merged[rest] = _flag(value)
    elif section == "secureline" and rest == "portal_weak_notice":
        merged[rest] = _choice(value, [str(p) for p in WeakNoticePolicy])
    elif section == "dlp" and rest == "enabled":
        merged[rest] = _flag(value)
    elif section == "dlp" and rest == "default_action":
        merged[rest] = _choice(value, list(DLP_RANK))
    elif section == "dlp" and rest.startswith("actions.") and len(rest) > len("actions."):
        merged["actions"] = {
            **(merged.get("actions") or {}),
            rest[len("actions.") :]: _choice(value, list(DLP_RANK)),
        }
    else:
        raise ValidationFailed(
            [{"field": "setting", "message": f"unknown setting {setting!r}; one of: {SETTINGS_HELP}"}]
        )
    if section == "dlp":
        policy_from_settings(merged)  # validates before saving, as the API does
    return {section: merged}


@policy_app.command("show")
@friendly
def policy_show(tenant: Annotated[str | None, typer.Option(help="Tenant name or id.")] = None) -> None:
    """The tenant's SecureLine, DLP and TLS settings, as JSON."""
    svc = _services()
    settings = svc.tenancy.get_tenant(_tenant(svc, tenant)).settings
    shown = {k: settings.get(k) for k in ("secureline", "dlp", "tls_policy") if settings.get(k) is not None}
    out.print_json(data=shown)


@policy_app.command("set")
@friendly
def policy_set(
    setting: Annotated[str, typer.Argument(help=SETTINGS_HELP)],
    value: str,
    reason: Annotated[
        str | None,
        typer.Option(help=f"Why; required (at least {MIN_REASON} characters) when this weakens protection."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant name or id.")] = None,
) -> None:
    """Change one protective setting; a weakening needs --reason and lands in the decisions register."""
    svc = _services()
    tenant_id = _tenant(svc, tenant)
    current = svc.tenancy.get_tenant(tenant_id).settings
    try:
        changes = changes_for(setting.strip(), value.strip(), current)
        weaker = require_reason(current, {**current, **changes}, reason)
    except ValidationFailed as exc:
        problems: list[dict[str, str]] = exc.extra.get("errors", [])
        for problem in problems:
            err.print(f"[red]error:[/red] {problem['message']}")
        if any(p["field"] == "reason" for p in problems):
            err.print('Pass --reason "…" to record why (it is kept in the decisions register).')
        raise typer.Exit(2) from exc
    also = Decisions(svc.tenancy.engine).recorder((reason or "").strip(), audit_weak_notice_change)
    svc.tenancy.update_settings(tenant_id, changes, actor="cli", also=also)
    svc.screener.forget(tenant_id)
    out.print(json.dumps({setting: value}))
    if weaker:
        out.print(f"weakened {', '.join(weaker)}; the reason is in the decisions register")


@policy_app.command("decisions")
@friendly
def policy_decisions(
    tenant: Annotated[str | None, typer.Option(help="Tenant name or id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 200,
) -> None:
    """The decisions register: every protective setting weakened, by whom, when and why."""
    svc = _services()
    for d in Decisions(svc.tenancy.engine).register(_tenant(svc, tenant), limit):
        when = d.created_at.isoformat(timespec="seconds")
        line = f"{when}  {d.setting}  {json.dumps(d.before)} -> {json.dumps(d.after)}  {d.actor}  {d.reason}"
        out.print(line, markup=False, highlight=False, soft_wrap=True)
