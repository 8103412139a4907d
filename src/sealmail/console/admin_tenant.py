"""Running the tenant from the console: SecureLine and DLP policy (weakening needs a
written reason, kept in the decisions register), the register itself, reply mailboxes,
and the DLP quarantine with release.

Settings are saved through ``Tenancy.update_settings`` (its audit entry carries the before
and after); the register rows are written in that same transaction.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.dlp.screening import Screener, policy_from_settings
from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.errors import ValidationFailed
from sealmail.messages.service import Messages
from sealmail.portal.access import audit_weak_notice_change
from sealmail.tenancy.credentials import Principal
from sealmail.tenancy.decisions import DLP_RANK, MIN_REASON, PROTECTIVE_FLAGS, Decisions, weakenings
from sealmail.tenancy.service import Tenancy
from sealmail.users.model import Session
from sealmail.users.roles import Permission

FLAG_LABELS = {
    "force_portal": "Send every message through the secure portal",
    "require_message_encryption_on_phi": "When DLP finds PHI, never rely on TLS alone",
    "portal_require_passphrase": "Portal messages open only with a passphrase the sender sets",
}
MAX_SENDERS = 200


@dataclass(frozen=True, slots=True)
class TenantPages:
    tenancy: Tenancy
    messages: Messages
    screener: Screener
    decisions: Decisions

    def section(self) -> ConsoleSection:
        nav = [
            ("/policy", "Policy", Permission.MANAGE_SETTINGS),
            ("/replies", "Reply mailboxes", Permission.MANAGE_SETTINGS),
            ("/quarantine", "Quarantine", Permission.MANAGE_QUARANTINE),
            ("/decisions", "Decisions", Permission.VIEW_AUDIT),
        ]
        return ConsoleSection(nav=nav, mount=self.mount)

    def mount(self, app: FastAPI, kit: Kit) -> None:
        _policy_pages(app, kit, self)
        _reply_pages(app, kit, self.tenancy)
        _quarantine_pages(app, kit, self.messages)

        @app.get("/decisions")
        def register(request: Request) -> Response:
            who = kit.signed_in(request, Permission.VIEW_AUDIT)
            if isinstance(who, Response):
                return who
            rows = self.decisions.register(who.tenant_id)
            return kit.render(
                request, "admin_decisions.html", title="Decisions", who=who, rows=rows, csrf=kit.csrf(request)
            )


def _policy_form(settings: dict[str, Any], form: Any) -> dict[str, Any]:
    """The settings changes a posted policy form asks for (validated)."""
    secureline = dict(settings.get("secureline") or {})
    for flag in PROTECTIVE_FLAGS:
        secureline[flag] = form.get(flag) == "on"
    dlp = dict(settings.get("dlp") or {})
    dlp["enabled"] = form.get("dlp_enabled") == "on"
    action = str(form.get("dlp_default_action", ""))
    if action not in DLP_RANK:
        raise ValidationFailed([{"field": "dlp_default_action", "message": "is not a DLP action"}])
    dlp["default_action"] = action
    policy_from_settings(dlp)
    return {"secureline": secureline, "dlp": dlp}


Page = Callable[..., HTMLResponse]  # page(request, who, status=200, **ctx)
Save = Callable[[Request, Session, Any], Response]  # save(request, who, form), in a worker thread


def _settings_form(app: FastAPI, kit: Kit, path: str, page: Page, save: Save) -> None:
    """A settings page: GET shows the form, POST (CSRF-checked) saves it and shows it again."""

    async def show(request: Request) -> Response:
        who = await run_in_threadpool(kit.signed_in, request, Permission.MANAGE_SETTINGS)
        return who if isinstance(who, Response) else await run_in_threadpool(page, request, who)

    async def post(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_SETTINGS)
        if isinstance(acted, Response):
            return acted
        return await run_in_threadpool(save, request, *acted)

    app.add_api_route(path, show, methods=["GET"])
    app.add_api_route(path, post, methods=["POST"])


def _policy_pages(app: FastAPI, kit: Kit, pages: TenantPages) -> None:
    tenancy = pages.tenancy

    def page(request: Request, who: Session, status: int = 200, **ctx: Any) -> HTMLResponse:
        settings = tenancy.get_tenant(who.tenant_id).settings or {}
        dlp = settings.get("dlp") or {}
        return kit.render(
            request, "admin_policy.html", status=status, title="Policy", who=who, labels=FLAG_LABELS,
            flags={f: bool((settings.get("secureline") or {}).get(f)) for f in PROTECTIVE_FLAGS},
            dlp_enabled=dlp.get("enabled", True) is not False,
            dlp_action=dlp.get("default_action", "require_encryption"), actions=list(DLP_RANK),
            csrf=kit.csrf(request), **ctx,
        )  # fmt: skip

    def save(request: Request, who: Session, form: Any) -> Response:
        reason = str(form.get("reason", "")).strip()[:2000]
        current = dict(tenancy.get_tenant(who.tenant_id).settings or {})
        try:
            changes = _policy_form(current, form)
        except ValidationFailed as exc:
            return page(request, who, 400, error=exc.detail)
        weaker = weakenings(current, {**current, **changes})
        if weaker and len(reason) < MIN_REASON:
            names = ", ".join(weaker)
            error = f"This change weakens protection ({names}). Write the reason for the decisions register."
            return page(request, who, 400, error=error, weaker=weaker)
        also = pages.decisions.recorder(reason, audit_weak_notice_change)
        tenancy.update_settings(who.tenant_id, changes, actor=who.actor, also=also)
        pages.screener.forget(who.tenant_id)
        return page(request, who, saved=True, recorded=weaker)

    _settings_form(app, kit, "/policy", page, save)


def _address(value: str, field: str) -> str:
    try:
        return parse_address(value.strip(), field).addr_spec.lower()
    except InvalidAddress as exc:
        raise ValidationFailed([{"field": field, "message": exc.reason}]) from exc


def _reply_pages(app: FastAPI, kit: Kit, tenancy: Tenancy) -> None:
    def page(request: Request, who: Session, status: int = 200, **ctx: Any) -> HTMLResponse:
        settings = tenancy.get_tenant(who.tenant_id).settings or {}
        senders = sorted((settings.get("reply_mailboxes") or {}).items())
        return kit.render(
            request, "admin_replies.html", status=status, title="Reply mailboxes", who=who,
            mailbox=settings.get("reply_mailbox") or "", senders=senders,
            csrf=kit.csrf(request), **ctx,
        )  # fmt: skip

    def save(request: Request, who: Session, form: Any) -> Response:
        current = tenancy.get_tenant(who.tenant_id).settings or {}
        senders = dict(current.get("reply_mailboxes") or {})
        try:
            box = str(form.get("mailbox", "")).strip()
            changes: dict[str, Any] = {"reply_mailbox": _address(box, "mailbox") if box else None}
            sender, target = (
                str(form.get("sender", "")).strip(),
                str(form.get("sender_mailbox", "")).strip(),
            )
            if sender:
                senders[_address(sender, "sender")] = _address(target, "sender_mailbox")
            for gone in form.getlist("remove"):
                senders.pop(str(gone), None)
        except ValidationFailed as exc:
            return page(request, who, 400, error=exc.detail)
        if len(senders) > MAX_SENDERS:
            return page(request, who, 400, error=f"At most {MAX_SENDERS} senders.")
        changes["reply_mailboxes"] = senders or None
        tenancy.update_settings(who.tenant_id, changes, actor=who.actor)
        return page(request, who, saved=True)

    _settings_form(app, kit, "/replies", page, save)


def _quarantine_pages(app: FastAPI, kit: Kit, messages: Messages) -> None:
    @app.get("/quarantine")
    def quarantine(request: Request, before: str = "") -> Response:
        who = kit.signed_in(request, Permission.MANAGE_QUARANTINE)
        if isinstance(who, Response):
            return who
        principal = Principal(who.tenant_id, who.actor, frozenset({"read"}))
        held = messages.quarantined(principal, limit=50, cursor=before[:40] or None)
        return kit.render(
            request, "admin_quarantine.html", title="Quarantine", who=who, held=held, csrf=kit.csrf(request)
        )

    @app.post("/quarantine/{message_id}/release")
    async def release(request: Request, message_id: str) -> Response:
        def do(who: Session, _: Any) -> None:
            messages.release(Principal(who.tenant_id, who.actor, frozenset({"admin"})), message_id[:40])

        return await kit.act(request, Permission.MANAGE_QUARANTINE, do, "/quarantine")
