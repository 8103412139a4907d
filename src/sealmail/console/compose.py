"""Compose, Sent and reading content back: a sender's pages in the console.

A sender writes a secure message (plain text, optional formatted HTML cleaned by nh3,
attachments), picks "send securely" (OpenPGP/S/MIME or the portal for every recipient,
never TLS alone) or lets SecureLine decide, and lands on the message's outcome page.  The
message goes through the same intake as the API (``compose.from_message`` and
``Messages.submit``), recorded with the console user as its actor, which is what makes it
theirs (``outbox.py``).  Reading content is ``content.read`` and always audited by
``Messages.content``; a sender reads only their own.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pydantic
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response

from sealmail.console.kit import Kit
from sealmail.console.large_files import mount_uploads
from sealmail.console.trail_pages import MessageView
from sealmail.console.web import ConsoleSection
from sealmail.domain.secureline import Protection
from sealmail.domain.tls_policy import Stream
from sealmail.errors import Conflict, SealmailError, ValidationFailed
from sealmail.files import attaching
from sealmail.files.service import FileShares
from sealmail.messages import compose
from sealmail.messages.schemas import AttachmentIn, MessageIn
from sealmail.messages.service import Messages
from sealmail.portal.mailbox import reply_destination
from sealmail.portal.sanitize import clean_html
from sealmail.tenancy.credentials import Principal
from sealmail.users.model import Session
from sealmail.users.roles import Permission
from sealmail.web.uploads import check_declared_length

_SPLIT = re.compile(r"[,;\s]+")
FIELDS = ("from", "to", "subject", "text", "html", "protection", "notice")
NOTICES = ("email", "sms", "both")


class NoticeCheck(Protocol):
    """``Texting.check_notices``: per-recipient SMS notice choices, refused when not possible."""

    def check_notices(
        self, tenant_id: str, choices: Mapping[str, str], recipients: Iterable[str]
    ) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class ComposeOptions:
    message_id_domain: str
    max_recipients: int
    max_upload_bytes: int = 20 * 1024 * 1024  # attachments together, before base64
    max_files: int = 10
    max_file_bytes: int = 2 * 1024**3  # each large file, sent as a secure link (files/)


class TooLarge(Exception):
    pass


async def _attachments(form: Any, opts: ComposeOptions) -> list[AttachmentIn]:
    """The uploaded files, bounded in count and total size (an empty file input sends one
    nameless part, which is no attachment)."""
    out: list[AttachmentIn] = []
    total = 0
    for item in form.getlist("attachments"):
        if not isinstance(item, UploadFile) or not item.filename:
            continue
        data = await item.read(opts.max_upload_bytes - total + 1)
        total += len(data)
        if total > opts.max_upload_bytes:
            raise TooLarge
        kind = item.content_type or "application/octet-stream"
        out.append(
            AttachmentIn(
                filename=item.filename[:255], content_type=kind, content=base64.b64encode(data).decode()
            )
        )
    return out


def _draft(form: Any) -> dict[str, str]:
    draft = {k: str(form.get(k, ""))[:200_000] for k in FIELDS}
    # Large files uploaded already (compose.js), by id: kept when the form is shown again.
    ids = [str(v).strip()[:40] for v in form.getlist("large_files")][: attaching.MAX_FILES + 1]
    draft["large_files"] = ",".join(i for i in ids if i and "," not in i)
    return draft


def _message(draft: dict[str, str], files: list[AttachmentIn], links: list[str] | None = None) -> MessageIn:
    html, text = draft["html"].strip(), draft["text"]
    if links:
        # The files travel as links to the portal, where the recipient signs in to download.
        text = text.rstrip() + "\n\nFiles shared with you securely (sign in to the portal to download):\n"
        text += "\n".join(links) + "\n"
        if html:
            items = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
            html += f"<p>Files shared with you securely:</p><ul>{items}</ul>"
    return MessageIn.model_validate(
        {
            "from": draft["from"].strip(),
            "to": [a for a in _SPLIT.split(draft["to"]) if a],
            "subject": draft["subject"].strip(),
            "text": text if text.strip() else None,
            "html": clean_html(html) if html else None,
            "attachments": files,
            "stream": Stream.PHI,
            "protection": draft["protection"] or Protection.SECURE,
        }
    )


def compose_section(
    messages: Messages, view: MessageView, opts: ComposeOptions, shares: FileShares, notices: NoticeCheck
) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        _compose_pages(app, kit, Sender(messages, shares, opts, notices))
        mount_uploads(app, kit, shares, opts.max_file_bytes)
        _sent_pages(app, kit, messages, view)

    nav = [("/compose", "Compose", Permission.COMPOSE), ("/sent", "Sent", Permission.COMPOSE)]
    return ConsoleSection(nav=nav, mount=mount)


@dataclass(frozen=True, slots=True)
class Sender:
    """Compose's one use case: the form's message (attachments, large files and the portal
    notice choice) submitted."""

    messages: Messages
    shares: FileShares
    opts: ComposeOptions
    notices: NoticeCheck

    async def send(self, who: Session, form: Any, draft: dict[str, str]) -> str:
        """The accepted message's id; raises what the page shows (TooLarge, validation, …)."""
        opts, shares = self.opts, self.shares
        principal = Principal(who.tenant_id, who.actor, frozenset({"send"}))
        files = await _attachments(form, opts)
        large = [i for i in draft["large_files"].split(",") if i]
        if len(large) > attaching.MAX_FILES:
            raise ValidationFailed(
                [{"field": "large_files", "message": f"at most {attaching.MAX_FILES} files"}]
            )
        if large:
            await run_in_threadpool(attaching.unsent, shares, principal, large)
        body = _message(draft, files, [attaching.link(shares, f) for f in large])
        sub = compose.from_message(body, opts.message_id_domain, opts.max_recipients)
        if draft["notice"] in ("sms", "both"):
            # The choice applies to every recipient of the form; the API takes one per address.
            wanted = {r.address: draft["notice"] for r in sub.recipients}
            checked = await run_in_threadpool(self.notices.check_notices, who.tenant_id, wanted, wanted)
            sub = replace(sub, notices=checked)
        if large:
            sub = attaching.carrying(sub, large)
        accepted, _ = await run_in_threadpool(self.messages.submit, principal, sub)
        if large:
            try:
                await run_in_threadpool(attaching.bind, shares, principal, large, accepted.id)
            except Conflict:
                # Sent or deleted meanwhile: withdraw the message rather than send dead links.
                await run_in_threadpool(self.messages.cancel, principal, accepted.id)
                raise
        return accepted.id


def _compose_pages(app: FastAPI, kit: Kit, sender: Sender) -> None:
    messages, opts = sender.messages, sender.opts

    def page(
        request: Request,
        who: Session,
        draft: dict[str, str],
        status: int = 200,
        errors: list[str] | None = None,
    ) -> HTMLResponse:
        # Where a patient's portal reply to this sender lands (reply mailboxes, issue 14).
        settings = dict(messages.tenancy.tenant_settings(who.tenant_id))
        replies_to = reply_destination("", (draft["from"] or who.email).strip(), settings)
        return kit.render(
            request, "compose.html", status=status, scripted=True, title="Compose", who=who, draft=draft,
            errors=errors or [], limit_mb=opts.max_upload_bytes // (1024 * 1024), max_files=opts.max_files,
            large_mb=opts.max_file_bytes // (1024 * 1024), large_max=attaching.MAX_FILES,
            large=[i for i in draft["large_files"].split(",") if i], replies_to=replies_to,
            csrf=kit.csrf(request),
        )  # fmt: skip

    @app.get("/compose")
    def compose_form(request: Request) -> Response:
        who = kit.signed_in(request, Permission.COMPOSE)
        if isinstance(who, Response):
            return who
        draft = dict.fromkeys(FIELDS, "") | {
            "from": who.email,
            "protection": Protection.SECURE.value,
            "notice": "email",
        }
        draft["large_files"] = ""
        return page(request, who, draft)

    @app.post("/compose")
    async def send(request: Request) -> Response:
        # Refused before a byte of the body is parsed: uvicorn holds a body to its length.
        too_large = f"Attachments may add up to {opts.max_upload_bytes // (1024 * 1024)} MB."
        check_declared_length(request, opts.max_upload_bytes * 4 // 3 + 300_000, too_large)
        acted = await kit.acting(request, Permission.COMPOSE, max_files=opts.max_files)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        draft = _draft(form)
        try:
            message_id = await sender.send(who, form, draft)
        except TooLarge:
            return page(
                request,
                who,
                draft,
                413,
                [f"Attachments may add up to {opts.max_upload_bytes // (1024 * 1024)} MB."],
            )
        except pydantic.ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]]
            return page(request, who, draft, 400, problems)
        except ValidationFailed as exc:
            problems = [f"{e['field']}: {e['message']}" for e in exc.extra.get("errors", [])]
            return page(request, who, draft, 400, problems or [exc.detail])
        except SealmailError as exc:
            return page(request, who, draft, 400 if exc.status >= 500 else exc.status, [exc.detail])
        return kit.redirect(request, f"/sent/{message_id}")


def _sent_pages(app: FastAPI, kit: Kit, messages: Messages, view: MessageView) -> None:
    outbox = view.outbox

    def mine(request: Request, permission: Permission, message_id: str) -> Session | Response:
        """Signed in with ``permission``, and the message is theirs — or they read any
        trail (support, administrators).  404 either way: no hint that it exists."""
        who = kit.signed_in(request, permission)
        if isinstance(who, Response):
            return who
        if not who.may(Permission.VIEW_TRAIL) and not outbox.owns(who, message_id):
            raise HTTPException(404, "No such message among yours.")
        return who

    @app.get("/sent")
    def sent(request: Request, before: str = "") -> Response:
        who = kit.signed_in(request, Permission.COMPOSE)
        if isinstance(who, Response):
            return who
        rows = outbox.sent(who, before[:40] or None)
        return kit.render(
            request, "compose_sent.html", title="Sent", who=who, rows=rows, csrf=kit.csrf(request)
        )

    @app.get("/sent/{message_id}")
    def outcome(request: Request, message_id: str) -> Response:
        who = mine(request, Permission.COMPOSE, message_id[:40])
        if isinstance(who, Response):
            return who
        return view.render(kit, request, who, message_id[:40], "compose_outcome.html", "Outcome", "sent")

    @app.get("/content/{message_id}")
    def content(request: Request, message_id: str) -> Response:
        who = mine(request, Permission.READ_CONTENT, message_id[:40])
        if isinstance(who, Response):
            return who
        # Messages.content writes the audit entry (message:content_read) with this user.
        body = messages.content(Principal(who.tenant_id, who.actor, frozenset({"read"})), message_id[:40])
        html = clean_html(body.html) if body.html else ""
        return kit.render(
            request, "compose_content.html", title="Message content", who=who, body=body, html=html,
            csrf=kit.csrf(request),
        )  # fmt: skip
