"""The recipient-facing portal: a FastAPI app of server-rendered pages, no JavaScript.

Mounted at ``/p`` (the notice link is ``<portal URL>/p/<token>``) by the role that serves
the public pages, with the file pages beside it (``intake.portal_site``).  Nothing PHI-bearing ever
appears in a URL, a page title or a log line: URLs carry opaque hold ids and indexes,
titles name only the organisation.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from datetime import datetime
from typing import Any, Protocol

from argon2 import PasswordHasher
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.engine import Engine
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from sealmail.domain.display_text import safe_download_name
from sealmail.domain.portal_factors import Channel
from sealmail.errors import NotFound
from sealmail.messages.service import Messages
from sealmail.portal import display
from sealmail.portal.access import (
    Clock,
    CodeTexter,
    LinkState,
    PortalAccess,
    Session,
    SignInStatus,
)
from sealmail.portal.branding import Branding, branding
from sealmail.portal.mailbox import Mailbox, Part
from sealmail.portal.options import PortalOptions
from sealmail.portal.sanitize import clean_html, has_remote_images
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Tenancy
from sealmail.web import downloads, error_pages, security

TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_REPLY_FILES = 10


class PortalServices(Protocol):
    """What the portal pages are handed by the composition root."""

    @property
    def engine(self) -> Engine: ...
    @property
    def messages(self) -> Messages: ...
    @property
    def keyring(self) -> Keyring: ...
    @property
    def tenancy(self) -> Tenancy: ...
    @property
    def password_hasher(self) -> PasswordHasher: ...
    @property
    def message_id_domain(self) -> str: ...
    @property
    def portal_options(self) -> PortalOptions: ...
    @property
    def portal_texts(self) -> CodeTexter | None: ...


STATUS_PAGES: dict[str, tuple[int, str]] = {
    "invalid": (404, "This link does not work"),
    "expired": (410, "This secure message has expired"),
    "recalled": (410, "The sender withdrew this message"),
    "locked": (429, "Sign-in is paused"),
    "signed_out": (401, "You are signed out"),
    "not_found": (404, "Message not found"),
    "restart": (400, "Please open the link again"),
    "forbidden": (403, "This form has expired"),
    "bad_request": (400, "This page could not be opened"),
}


def create_portal(
    services: PortalServices, options: PortalOptions | None = None, *, clock: Clock | None = None
) -> FastAPI:
    """The portal app; mount it at ``/p`` (the role adds the file pages: ``intake.portal_site``)."""
    opts = options or services.portal_options
    access = PortalAccess(
        services.engine,
        services.messages,
        services.password_hasher,
        policy=opts.policy,
        clock=clock,
        message_id_domain=services.message_id_domain,
        texter=services.portal_texts,
    )
    mailbox = Mailbox(access, services.keyring, services.messages)
    names = security.CookieNames.for_(opts.secure_cookies)
    env = display.install(
        Environment(loader=PackageLoader("sealmail.portal", "templates"), autoescape=select_autoescape())
    )
    env.globals["LinkState"] = LinkState  # pages compare a link's state with the enum, not a string
    css = (env.loader.get_source(env, "portal.css")[0]) if env.loader else ""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(security.HardenEveryResponse)
    app.state.access = access
    app.state.mailbox = mailbox

    def brand_for(tenant_id: str | None) -> Branding:
        if tenant_id is None:
            return Branding("Secure messages", "#0b5cad", None)
        try:
            row = services.tenancy.get_tenant(tenant_id)
        except NotFound:
            return Branding("Secure messages", "#0b5cad", None)
        return branding(row.name, dict(row.settings))

    def render(
        request: Request, template: str, *, tenant_id: str | None, status: int = 200, **ctx: Any
    ) -> HTMLResponse:
        brand = brand_for(tenant_id)
        base = request.scope.get("root_path", "")
        html = env.get_template(template).render(base=base, brand=brand, tenant_id=tenant_id, **ctx)
        csp = security.PAGE_CSP.format(logo=f" {brand.logo_origin}" if brand.logo_origin else "")
        return security.harden(HTMLResponse(html, status_code=status), csp)  # type: ignore[return-value]

    def status_page(request: Request, kind: str, tenant_id: str | None = None, **ctx: Any) -> HTMLResponse:
        code, title = STATUS_PAGES[kind]
        return render(request, "status.html", tenant_id=tenant_id, status=code, kind=kind, title=title, **ctx)

    def redirect(request: Request, path: str) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "") + path, status_code=303)

    def current(request: Request) -> tuple[Session | None, str]:
        token = request.cookies.get(names.session)
        if not token:
            return None, "none"
        return access.session(token)

    async def checked_form(request: Request, cookie: str, max_files: int = 0) -> Any:
        """Parse a form and enforce CSRF and same-origin, or raise 403.

        Only the reply form takes files: a file posted to a sign-in step (before any
        session exists) is a 400, not a spooled temporary file.
        """
        form = await request.form(max_files=max_files, max_fields=20)
        if not security.same_origin(request) or not security.csrf_ok(
            request.cookies.get(cookie), form.get("csrf")
        ):
            raise HTTPException(403)
        return form

    def refused(request: Request, status: int, detail: str) -> Response:
        kind = {400: "bad_request", 403: "forbidden", 404: "not_found"}.get(status)
        if kind is None:
            return security.harden(PlainTextResponse(detail, status), "default-src 'none'")
        return status_page(request, kind)

    error_pages.install(app, refused)

    # -- static -------------------------------------------------------------------------------
    @app.get("/static/portal.css", include_in_schema=False)
    def stylesheet() -> Response:
        return security.harden(Response(css, media_type="text/css"), "default-src 'none'")

    @app.get("/theme/{tenant_id}.css", include_in_schema=False)
    def theme(tenant_id: str) -> Response:
        brand = brand_for(tenant_id)
        body = f":root{{--brand:{brand.color};}}\n"
        return security.harden(Response(body, media_type="text/css"), "default-src 'none'")

    # -- sign-in ------------------------------------------------------------------------------
    @app.get("/signin")
    def signin(request: Request, sent: int = 0, error: str = "") -> Response:
        token = request.cookies.get(names.challenge)
        ch = access.challenge(token) if token else None
        if token is None or ch is None:
            return status_page(request, "restart")
        state = ch.hold.state(access.now())
        if state is not LinkState.OPEN:
            return status_page(request, str(state), ch.hold.tenant_id)
        if ch.locked_until is not None:
            return status_page(request, "locked", ch.hold.tenant_id, until=ch.locked_until)
        return render(
            request,
            "signin.html",
            tenant_id=ch.hold.tenant_id,
            title="Sign in",
            csrf=security.csrf_token(token),
            masked=_mask(ch.hold.address),
            passphrase=ch.hold.requires_passphrase,
            code_sent=ch.code_sent,
            email_code=ch.email_code,
            sms_code=ch.sms_code,
            sent=bool(sent),
            texted=sent == 2,
            error=error if error in ERRORS else "",
            error_text=ERRORS.get(error, ""),
            digits=access.policy.code_digits,
        )

    @app.post("/signin/code")
    async def request_code(request: Request) -> Response:
        form = await checked_form(request, names.challenge)
        channel = Channel.SMS if form.get("channel") == "sms" else Channel.EMAIL
        result = await run_in_threadpool(access.send_code, request.cookies[names.challenge], channel)
        if result.status is SignInStatus.LOCKED:
            return await _locked(request)
        if result.status is SignInStatus.EXPIRED:
            return status_page(request, "restart")
        if result.status is SignInStatus.THROTTLED:
            return redirect(request, "/signin?error=throttled")
        if result.status is SignInStatus.UNAVAILABLE:
            return redirect(request, "/signin?error=insecure")
        return redirect(request, "/signin?sent=2" if channel is Channel.SMS else "/signin?sent=1")

    async def _locked(request: Request) -> Response:
        token = request.cookies.get(names.challenge, "")
        ch = await run_in_threadpool(access.challenge, token)
        tenant = ch.hold.tenant_id if ch else None
        # The tenant's branding is a database read: off the event loop.
        until = ch.locked_until if ch else None
        return await run_in_threadpool(lambda: status_page(request, "locked", tenant, until=until))

    async def _finish_signin(
        request: Request, status: SignInStatus, session_token: str | None, remaining: int
    ) -> Response:
        if status is SignInStatus.OK and session_token:
            # The inbox takes a reader with one message straight to it.
            response = redirect(request, "/inbox")
            security.set_cookie(
                response, names.session, session_token, secure=opts.secure_cookies, max_age=None
            )
            security.clear_cookie(response, names.challenge, secure=opts.secure_cookies)
            return response
        if status is SignInStatus.LOCKED:
            return await _locked(request)
        if status is SignInStatus.EXPIRED:
            return redirect(request, "/signin?error=expired")
        return redirect(request, f"/signin?error=wrong{min(max(remaining, 0), 9)}")

    @app.post("/signin/verify")
    async def verify(request: Request) -> Response:
        form = await checked_form(request, names.challenge)
        code = str(form.get("code", ""))[:32]
        r = await run_in_threadpool(access.verify_code, request.cookies[names.challenge], code)
        return await _finish_signin(request, r.status, r.session_token, r.remaining)

    @app.post("/signin/passphrase")
    async def passphrase(request: Request) -> Response:
        form = await checked_form(request, names.challenge)
        given = str(form.get("passphrase", ""))[:1024]
        r = await run_in_threadpool(access.verify_passphrase, request.cookies[names.challenge], given)
        return await _finish_signin(request, r.status, r.session_token, r.remaining)

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        await checked_form(request, names.session)
        await run_in_threadpool(access.end_session, request.cookies[names.session])
        response = status_page(request, "signed_out", why="signout")
        security.clear_cookie(response, names.session, secure=opts.secure_cookies)
        return response

    # -- reading ------------------------------------------------------------------------------
    def signed_out(request: Request, why: str) -> Response:
        response = status_page(request, "signed_out", why=why)
        security.clear_cookie(response, names.session, secure=opts.secure_cookies)
        return response

    @app.get("/inbox")
    def inbox(request: Request) -> Response:
        session, why = current(request)
        if session is None:
            return signed_out(request, why)
        items = mailbox.inbox(session)
        if len(items) == 1 and items[0].state is LinkState.OPEN and request.query_params.get("all") != "1":
            # One message: take the reader straight to it (the common, patient-facing case).
            return redirect(request, f"/m/{items[0].hold.id}")
        return render(
            request,
            "inbox.html",
            tenant_id=session.tenant_id,
            title="Your secure messages",
            signed_in=True,
            items=items,
            csrf=security.csrf_token(request.cookies[names.session]),
        )

    def thread_or_status(request: Request, session: Session, hold_id: str) -> Any:
        state = mailbox.status(session, hold_id)
        if state is None:
            return status_page(request, "not_found", session.tenant_id)
        if state is not LinkState.OPEN:
            return status_page(request, str(state), session.tenant_id)
        thread = mailbox.read(session, hold_id)
        if thread is None:
            return status_page(request, "expired", session.tenant_id)
        return thread

    @app.get("/m/{hold_id}")
    def message(request: Request, hold_id: str, sent: int = 0, error: str = "") -> Response:
        session, why = current(request)
        if session is None:
            return signed_out(request, why)
        thread = thread_or_status(request, session, hold_id)
        if isinstance(thread, Response):
            return thread
        html = clean_html(thread.letter.html) if thread.letter.html else None
        return render(
            request,
            "message.html",
            tenant_id=session.tenant_id,
            title="Secure message",
            signed_in=True,
            thread=thread,
            letter=thread.letter,
            has_html=html is not None,
            images_available=bool(html and has_remote_images(html)),
            images=request.query_params.get("images") == "1",
            csrf=security.csrf_token(request.cookies[names.session]),
            sent=bool(sent),
            texted=sent == 2,
            error=error if error in ERRORS else "",
            error_text=ERRORS.get(error, ""),
            fmt_date=_fmt_date,
            size=_size,
        )

    @app.get("/m/{hold_id}/print")
    def print_view(request: Request, hold_id: str) -> Response:
        session, why = current(request)
        if session is None:
            return signed_out(request, why)
        thread = thread_or_status(request, session, hold_id)
        if isinstance(thread, Response):
            return thread
        return render(
            request,
            "print.html",
            tenant_id=session.tenant_id,
            title="Print secure message",
            thread=thread,
            # Sanitized by nh3; the page CSP (no script, images only from us) still applies.
            clean_html=clean_html(thread.letter.html)
            if thread.letter.html and not thread.letter.text
            else "",
            letter=thread.letter,
            fmt_date=_fmt_date,
            size=_size,
        )

    @app.get("/m/{hold_id}/body")
    def body(request: Request, hold_id: str, images: int = 0) -> Response:
        session, _ = current(request)
        if session is None:
            raise HTTPException(404)
        # The frame is part of the view already audited by the page that embeds it.
        thread = mailbox.read(session, hold_id, record=False)
        if thread is None or thread.letter.html is None:
            raise HTTPException(404)
        doc = (
            '<!doctype html><html><head><meta charset="utf-8"><title>Message</title></head>'
            f'<body style="font-family:sans-serif;font-size:16px;line-height:1.5;margin:8px">'
            f"{clean_html(thread.letter.html)}</body></html>"
        )
        return security.harden(HTMLResponse(doc), security.body_csp(bool(images)), frame=True)

    @app.get("/m/{hold_id}/a/{index}")
    def download(request: Request, hold_id: str, index: int) -> Response:
        session, why = current(request)
        if session is None:
            return signed_out(request, why)
        part = mailbox.attachment(session, hold_id, index)
        if part is None:
            raise HTTPException(404)
        return security.harden(_download(part), "default-src 'none'; sandbox")

    @app.post("/m/{hold_id}/reply")
    async def reply(request: Request, hold_id: str) -> Response:
        session, why = await run_in_threadpool(current, request)
        if session is None:
            return signed_out(request, why)
        form = await checked_form(request, names.session, MAX_REPLY_FILES)
        text = str(form.get("body", "")).strip()
        files: list[Part] = []
        total = len(text)
        for item in form.getlist("files"):
            if isinstance(item, UploadFile) and item.filename:
                data = await item.read()
                total += len(data)
                if data:
                    files.append(
                        Part(_safe_name(item.filename), item.content_type or "application/octet-stream", data)
                    )
        if not text and not files:
            return redirect(request, f"/m/{hold_id}?error=empty#reply")
        if total > opts.max_reply_bytes:
            return redirect(request, f"/m/{hold_id}?error=toolarge#reply")
        sent = await run_in_threadpool(mailbox.reply, session, hold_id, text, files)
        if sent is None:
            raise HTTPException(404)
        return redirect(request, f"/m/{hold_id}?sent=1#replies")

    # -- the link in the notice (last: every fixed path above wins) ---------------------------
    @app.get("/{token}")
    def landing(request: Request, token: str) -> Response:
        if not 20 <= len(token) <= 100 or not set(token) <= TOKEN_CHARS:
            raise HTTPException(404)
        state, challenge = access.open_link(token)
        if state is LinkState.INVALID:
            return status_page(request, "invalid")
        if state is not LinkState.OPEN or challenge is None:
            return status_page(request, str(state))
        response = redirect(request, "/signin")
        max_age = int(access.policy.challenge_ttl.total_seconds())
        security.set_cookie(response, names.challenge, challenge, secure=opts.secure_cookies, max_age=max_age)
        return response

    return app


ERRORS = {
    "expired": "That code has expired or was used up. Ask for a new code below.",
    "throttled": "Too many codes were requested. Please wait an hour, or use the newest code you received.",
    "insecure": "We cannot email you a code: your email provider did not accept the encrypted connection "
    "this message requires.",
    "empty": "Please write a message or attach a file before sending.",
    "toolarge": "The reply and its files are too large. Please send fewer or smaller files.",
    **{
        f"wrong{n}": f"That code is not right. You have {n} more {'try' if n == 1 else 'tries'}."
        for n in range(10)
    },
}


def _mask(address: str) -> str:
    """``j•••@example.net``: enough for the reader to recognise, little for a bystander."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def _fmt_date(value: datetime | None) -> str:
    return value.strftime("%d %B %Y, %H:%M %Z").strip() if value else ""


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]  # int → float for display only
    return str(n)


def _safe_name(name: str) -> str:
    # Keep the reader's file name but never a path, a control or a bidi override.
    return safe_download_name(name, "attachment")


def _download(part: Part) -> Response:
    disposition = downloads.disposition(part.filename, "attachment")
    ctype = part.content_type if "/" in part.content_type else "application/octet-stream"
    return Response(part.data, media_type=ctype, headers={"Content-Disposition": disposition})
