"""The admin console: server-rendered pages, no JavaScript, mounted at ``/console``.

Sign-in is a password and then a TOTP code (or a recovery code); a new user arrives by a
one-time link that makes them choose a password and enrol TOTP before anything else.
Every page is role-checked (``users/roles.py``) and tenant-scoped through the session; a
page the role lacks is a 403, never a redirect that hides it.  Cookies, CSRF tokens and
headers follow the portal's (``web/security.py``): a CSP with no script source at all.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import BaseLoader, ChoiceLoader, Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sealmail.console import charts
from sealmail.console.emergency_pages import emergency_pages
from sealmail.console.kit import MAX_FORM_FIELDS, Cookies, Kit
from sealmail.console.passkey_pages import passkey_pages
from sealmail.console.reports import Narrow, Reports
from sealmail.console.sso_pages import SignInHooks, sso_pages
from sealmail.console.throttle import SessionLimit, SignInLimit
from sealmail.domain.statuses import RecipientStatus
from sealmail.errors import SealmailError
from sealmail.limits.service import Limiter
from sealmail.users import roles, totp
from sealmail.users.keys import UserKeys
from sealmail.users.model import Session, SignIn, SignInStatus, Stage
from sealmail.users.roles import Permission
from sealmail.users.service import Users
from sealmail.users.sso import SingleSignOn
from sealmail.web import error_pages, security

CSP = security.PAGE_CSP.format(logo="")
# Only the passkey and compose pages run a script, and only the console's own static file;
# compose's uploads its large files to this origin (connect-src).
SCRIPTED_CSP = CSP + "; script-src 'self'; connect-src 'self'"
KEY_SCOPES = ("send", "read", "admin")
PAGES: list[tuple[str, str, Permission]] = [
    ("/", "Dashboard", Permission.VIEW_DASHBOARD),
    ("/messages", "Find a message", Permission.VIEW_TRAIL),
    ("/audit", "Audit log", Permission.VIEW_AUDIT),
    ("/users", "Users", Permission.MANAGE_USERS),
    ("/keys", "API keys", Permission.MANAGE_API_KEYS),
    ("/passkeys", "Passkeys", Permission.MANAGE_OWN_SIGNIN),
    ("/sso", "Single sign-on", Permission.MANAGE_SIGNIN_POLICY),
    ("/emergency", "Emergency access", Permission.MANAGE_OWN_SIGNIN),
]
SIGNIN_ERRORS = {
    "wrong": "That email and password do not match an account.",
    "code": "That code did not work. Codes change every 30 seconds and work once.",
    "locked": "Too many failed attempts: sign-in is paused for a while. Your administrator has been told.",
    "expired": "Your session or sign-in has expired. Please sign in again.",
    "idle": "You were signed out after a period without activity.",
    "disabled": "This account is no longer active.",
    "sso": "Single sign-on did not work. Ask your administrator, or sign in with your password.",
}


@dataclass(frozen=True, slots=True)
class ConsoleSection:
    """A feature's pages in the console, kept in the feature's own ``web.py``.

    ``nav`` adds menu entries (path, label, permission) after the console's own; ``mount``
    registers the routes on the console app with the shared ``Kit`` (role checks, CSRF,
    rendering); ``templates`` names a package whose ``templates/`` folder holds the section's
    pages, which may ``{% extends "base.html" %}``.  Template names must not collide across
    sections: prefix them with the feature (``evidence_reports.html``).
    """

    nav: Sequence[tuple[str, str, Permission]]
    mount: Callable[[FastAPI, Kit], None]
    templates: str | None = None


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    secure_cookies: bool = True
    # Per-address limits on the sign-in steps (console/throttle.py); None: unlimited (tests).
    limiter: Limiter | None = None
    signin_per_minute: int = 30
    # Per session (and 4x per address) on the signed-in pages (console/throttle.py).
    pages_per_minute: int = 300
    # The console's own URL (``app.console_url``): a link it hands out (an invitation) is built
    # from it, never from the request's Host header, which the client chooses.
    link_base: str = ""


def create_console(
    users: Users,
    reports: Reports,
    keys: UserKeys,
    options: ConsoleOptions | None = None,
    sections: Sequence[ConsoleSection] = (),
    sso: SingleSignOn | None = None,
) -> FastAPI:
    opts = options or ConsoleOptions()
    names = Cookies.for_(opts.secure_cookies)
    loaders: list[BaseLoader] = [PackageLoader("sealmail.console", "templates")]
    loaders += [PackageLoader(s.templates, "templates") for s in sections if s.templates]
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape())
    env.globals.update(columns=charts.columns, bars=charts.bars)  # server-rendered SVG
    css = loaders[0].get_source(env, "console.css")[0]
    script = loaders[0].get_source(env, "passkey.js")[0]
    pages = [*PAGES, *(entry for s in sections for entry in s.nav)]
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    if opts.limiter is not None:
        app.add_middleware(SignInLimit, limiter=opts.limiter, per_minute=opts.signin_per_minute)
        app.add_middleware(
            SessionLimit, limiter=opts.limiter, per_minute=opts.pages_per_minute, cookie=names.session
        )
    app.add_middleware(security.HardenEveryResponse)

    def render(
        request: Request, template: str, *, status: int = 200, scripted: bool = False, **ctx: Any
    ) -> HTMLResponse:
        who: Session | None = ctx.get("who")
        nav = [(path, label) for path, label, perm in pages if who is not None and who.may(perm)]
        base = request.scope.get("root_path", "")
        html = env.get_template(template).render(base=base, nav=nav, path=request.url.path, **ctx)
        policy = SCRIPTED_CSP if scripted else CSP
        return security.harden(HTMLResponse(html, status_code=status), policy)  # type: ignore[return-value]

    def redirect(request: Request, path: str) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "") + path, status_code=303)

    def set_cookie(response: Response, name: str, value: str) -> None:
        security.set_cookie(response, name, value, secure=opts.secure_cookies, max_age=None)

    async def form_for(
        request: Request, cookie: str, max_files: int = 0, max_fields: int = MAX_FORM_FIELDS
    ) -> Any:
        """The posted form, once its CSRF token and Origin check out; else 403."""
        form = await request.form(max_files=max_files, max_fields=max_fields)
        if not security.same_origin(request) or not security.csrf_ok(
            request.cookies.get(cookie), form.get("csrf")
        ):
            raise HTTPException(403, "This form has expired or did not come from this site.")
        # PostgreSQL text cannot hold NUL: a clear page here, not a driver error (a 500) later.
        if any(isinstance(v, str) and "\x00" in v for _, v in form.multi_items()):
            raise HTTPException(400, "A field holds a NUL character; remove it and submit the form again.")
        return form

    def status_page(request: Request, status: int, detail: str) -> Response:
        title = {400: "Not understood", 404: "Not found"}.get(status, "Not allowed")
        return render(request, "status.html", status=status, title=title, detail=detail)

    error_pages.install(app, status_page)

    @app.exception_handler(SealmailError)
    async def refused(request: Request, exc: SealmailError) -> Response:
        return render(request, "status.html", status=exc.status, title=exc.title, detail=exc.detail)

    def signed_in(request: Request, permission: Permission | None) -> Session | Response:
        token = request.cookies.get(names.session)
        who, why = users.session(token) if token else (None, "none")
        if who is None:
            response = redirect(request, "/signin" + (f"?error={why}" if why in SIGNIN_ERRORS else ""))
            security.clear_cookie(response, names.session, secure=opts.secure_cookies)
            return response
        if permission is not None and not who.may(permission):
            raise HTTPException(403, "Your role does not include this page.")
        if who.emergency is not None:  # break-glass: every page opened is on the record
            users.record_emergency_use(who, request.method, request.url.path)
        return who

    # -- static -------------------------------------------------------------------------------
    @app.get("/static/console.css", include_in_schema=False)
    def stylesheet() -> Response:
        return security.harden(Response(css, media_type="text/css"), "default-src 'none'")

    @app.get("/static/passkey.js", include_in_schema=False)
    def passkey_script() -> Response:
        return security.harden(Response(script, media_type="text/javascript"), "default-src 'none'")

    # -- sign-in ------------------------------------------------------------------------------
    @app.get("/signin")
    def signin_page(request: Request, error: str = "") -> Response:
        pre = request.cookies.get(names.pre) or secrets.token_urlsafe(32)
        response = render(
            request, "signin.html", title="Sign in", csrf=security.csrf_token(pre),
            error=SIGNIN_ERRORS.get(error, ""), sso=sso is not None,
        )  # fmt: skip
        set_cookie(response, names.pre, pre)
        return response

    @app.post("/signin")
    async def signin(request: Request) -> Response:
        form = await form_for(request, names.pre)
        email, password = str(form.get("email", ""))[:320], str(form.get("password", ""))[:1024]
        result = await run_in_threadpool(users.begin_signin, email, password)
        if result.status is not SignInStatus.OK or result.token is None:
            return redirect(
                request, f"/signin?error={'locked' if result.status is SignInStatus.LOCKED else 'wrong'}"
            )
        response = redirect(request, "/signin/code")
        set_cookie(response, names.signin, result.token)
        return response

    @app.get("/signin/code")
    def code_page(request: Request, error: str = "") -> Response:
        token = request.cookies.get(names.signin, "")
        who, _ = users.session(token, Stage.MFA) if token else (None, "none")
        if who is None:
            return redirect(request, "/signin?error=expired")
        options = users.signin_options(token)
        return render(
            request, "code.html", title="Sign in", csrf=security.csrf_token(token),
            error=SIGNIN_ERRORS.get(error, ""), passkey_options=options, scripted=options is not None,
        )  # fmt: skip

    @app.post("/signin/code")
    async def code(request: Request) -> Response:
        form = await form_for(request, names.signin)
        result = await run_in_threadpool(
            users.verify_mfa, request.cookies[names.signin], str(form.get("code", ""))[:40]
        )
        return second_factor_done(request, result)

    @app.post("/signin/passkey")
    async def passkey(request: Request) -> Response:
        form = await form_for(request, names.signin)
        result = await run_in_threadpool(
            users.verify_passkey, request.cookies[names.signin], str(form.get("credential", ""))
        )
        return second_factor_done(request, result)

    def second_factor_done(request: Request, result: SignIn) -> Response:
        if result.status is SignInStatus.OK and result.token:
            response = redirect(request, "/")
            set_cookie(response, names.session, result.token)
            security.clear_cookie(response, names.signin, secure=opts.secure_cookies)
            return response
        if result.status is SignInStatus.WRONG:
            return redirect(request, "/signin/code?error=code")
        return redirect(request, f"/signin?error={result.status}")

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        await form_for(request, names.session)
        await run_in_threadpool(users.end_session, request.cookies[names.session])
        response = redirect(request, "/signin")
        security.clear_cookie(response, names.session, secure=opts.secure_cookies)
        return response

    # -- first sign-in: one-time link, password, TOTP enrolment -------------------------------
    @app.get("/welcome/{token}")
    def welcome(request: Request, token: str) -> Response:
        enroll = users.open_link(token[:100])
        if enroll is None:
            raise HTTPException(
                404, "This link has been used or has expired. Ask your administrator for a new one."
            )
        response = redirect(request, "/enroll")
        set_cookie(response, names.signin, enroll)
        return response

    def enrolling(request: Request) -> tuple[Session, str]:
        token = request.cookies.get(names.signin, "")
        who, _ = users.session(token, Stage.ENROLL) if token else (None, "none")
        if who is None:
            raise HTTPException(404, "This enrolment has expired. Open your sign-in link again.")
        return who, token

    def enroll_page(request: Request, who: Session, token: str, status: int = 200, **ctx: Any) -> Response:
        secret = users.pending_secret(who)
        return render(
            request, "enroll.html", status=status, title="Set up your account", who_enrolling=who,
            csrf=security.csrf_token(token), secret=totp.grouped(secret),
            uri=totp.provisioning_uri(secret, who.email), **ctx,
        )  # fmt: skip

    @app.get("/enroll")
    def enroll_form(request: Request) -> Response:
        who, token = enrolling(request)
        return enroll_page(request, who, token)

    @app.post("/enroll")
    async def enroll(request: Request) -> Response:
        form = await form_for(request, names.signin)
        who, token = await run_in_threadpool(enrolling, request)
        password = str(form.get("password", ""))[:1024]
        result = await run_in_threadpool(users.enroll, token, password, str(form.get("code", ""))[:40])
        if result.refusal is not None or result.bad_code:
            error = result.refusal.text if result.refusal else SIGNIN_ERRORS["code"]
            return await run_in_threadpool(lambda: enroll_page(request, who, token, 400, error=error))
        # The enrolment session is now the signed-in session: move it to the session cookie.
        me, _ = await run_in_threadpool(users.session, token)
        response = render(
            request, "recovery.html", title="Recovery codes", codes=result.recovery_codes, who=me,
            csrf=security.csrf_token(token),
        )  # fmt: skip
        set_cookie(response, names.session, token)
        security.clear_cookie(response, names.signin, secure=opts.secure_cookies)
        return response

    async def acting(
        request: Request, permission: Permission, max_files: int = 0, max_fields: int = MAX_FORM_FIELDS
    ) -> tuple[Session, Any] | Response:
        """A state-changing post: the role first, then the form's CSRF token and Origin."""
        who = await run_in_threadpool(signed_in, request, permission)
        if isinstance(who, Response):
            return who
        return who, await form_for(request, names.session, max_files, max_fields)

    def csrf(request: Request) -> str:
        return security.csrf_token(request.cookies.get(names.session, ""))

    kit = Kit(render, redirect, signed_in, acting, csrf)
    _pages(app, users, reports, kit, pages, opts.link_base)
    _key_pages(app, keys, kit)
    passkey_pages(app, users, kit)
    emergency_pages(app, users, kit)
    if sso is not None:
        hooks = SignInHooks(
            lambda r: form_for(r, names.pre),
            lambda response, token: set_cookie(response, names.session, token),
            lambda response, token: set_cookie(response, names.signin, token),
            opts.secure_cookies,
        )
        sso_pages(app, users, sso, kit, hooks)
    for section in sections:
        section.mount(app, kit)
    return app


def _pages(
    app: FastAPI,
    users: Users,
    reports: Reports,
    kit: Kit,
    pages: Sequence[tuple[str, str, Permission]],
    link_base: str,
) -> None:
    """The signed-in pages, each behind its permission."""
    render, redirect, signed_in, csrf = kit.render, kit.redirect, kit.signed_in, kit.csrf

    @app.get("/")
    def dashboard(request: Request) -> Response:
        me = signed_in(request, None)
        if isinstance(me, Response):
            return me
        if not me.may(Permission.VIEW_DASHBOARD):
            # Roles without a dashboard (auditors) land on their first page.
            first = next((p for p, _, perm in pages if me.may(perm)), None)
            if first is None:
                raise HTTPException(403, "Your role does not include any console page.")
            return redirect(request, first)
        board = reports.dashboard_for(me, users.now())  # a sender's own messages only
        return render(request, "dashboard.html", title="Dashboard", who=me, board=board, csrf=csrf(request))

    @app.get("/messages")
    def find(
        request: Request,
        q: str = "",
        sender: str = "",
        status: str = "",
        since: str = "",
        until: str = "",
    ) -> Response:
        who = signed_in(request, Permission.VIEW_TRAIL)
        if isinstance(who, Response):
            return who
        # A browser sends untouched date fields as ``since=``: empty means no bound.
        first, last = _day(since), _day(until)
        end = datetime.combine(last + timedelta(days=1), time(0), UTC) if last else None
        start = datetime.combine(first, time(0), UTC) if first else None
        narrow = Narrow(sender[:320], status[:20], start, end)
        asked = bool(q or sender or status or since or until)
        found = reports.find(who.tenant_id, q[:400], narrow) if asked else []
        return render(
            request, "messages.html", title="Find a message", who=who, q=q, found=found, asked=asked,
            narrow=narrow, since=since or "", until=until or "", statuses=[s.value for s in RecipientStatus],
            csrf=csrf(request),
        )  # fmt: skip

    @app.get("/audit")
    def audit_view(
        request: Request, action: str = "", actor: str = "", before: int | None = None
    ) -> Response:
        who = signed_in(request, Permission.VIEW_AUDIT)
        if isinstance(who, Response):
            return who
        entries = reports.audit_entries(who.tenant_id, action=action[:60], actor=actor[:80], before=before)
        return render(
            request, "audit.html", title="Audit log", who=who, entries=entries, action=action, actor=actor,
            csrf=csrf(request),
        )  # fmt: skip

    def users_page(request: Request, who: Session, status: int = 200, **ctx: Any) -> HTMLResponse:
        assignable = [(r.value, roles.LABELS[r]) for r in roles.Role if roles.may_assign(who.role, r)]
        return render(
            request, "users.html", status=status, title="Users", who=who, assignable=assignable,
            people=users.list_users(who.tenant_id), labels={r.value: roles.LABELS[r] for r in roles.Role},
            csrf=csrf(request), **ctx,
        )  # fmt: skip

    @app.get("/users")
    def users_list(request: Request) -> Response:
        who = signed_in(request, Permission.MANAGE_USERS)
        return who if isinstance(who, Response) else users_page(request, who)

    @app.post("/users")
    async def invite(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_USERS)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        email, name, role = (str(form.get(k, ""))[:320] for k in ("email", "name", "role"))
        _, token = await run_in_threadpool(
            users.invite, who.tenant_id, email, name, role, who.actor, actor_role=who.role
        )
        link = f"{link_base or request.scope.get('root_path', '')}/welcome/{token}"
        return await run_in_threadpool(lambda: users_page(request, who, invited=link))

    @app.post("/users/{user_id}/role")
    async def change_role(request: Request, user_id: str) -> Response:
        def do(who: Session, form: Any) -> None:
            users.set_role(who, user_id[:40], str(form.get("role", ""))[:20])

        return await kit.act(request, Permission.MANAGE_USERS, do, "/users")

    @app.post("/users/{user_id}/disable")
    async def disable(request: Request, user_id: str) -> Response:
        return await kit.act(
            request, Permission.MANAGE_USERS, lambda who, _: users.disable(who, user_id[:40]), "/users"
        )


def _day(value: str) -> date | None:
    """A ``YYYY-MM-DD`` query value; empty is no bound, anything else is a 400."""
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise HTTPException(400, "Dates are written YYYY-MM-DD.") from exc


def _key_pages(app: FastAPI, keys: UserKeys, kit: Kit) -> None:
    """API keys made by people: each carries its creator and dies with them."""
    render, signed_in = kit.render, kit.signed_in

    def page(request: Request, who: Session, **ctx: Any) -> HTMLResponse:
        return render(
            request, "keys.html", title="API keys", who=who, keys=keys.list_keys(who),
            smtp=keys.list_smtp(who), csrf=kit.csrf(request),
            scopes=[s for s in KEY_SCOPES if roles.may_grant_scope(who.role, s)], **ctx,
        )  # fmt: skip

    @app.get("/keys")
    def key_list(request: Request) -> Response:
        who = signed_in(request, Permission.MANAGE_API_KEYS)
        return who if isinstance(who, Response) else page(request, who)

    @app.post("/keys")
    async def key_create(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_API_KEYS)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        chosen = [s for s in KEY_SCOPES if form.get(f"scope_{s}") == "on"]
        _, secret = await run_in_threadpool(keys.create, who, str(form.get("name", ""))[:200], chosen)
        return await run_in_threadpool(lambda: page(request, who, created=secret))

    @app.post("/keys/smtp")
    async def smtp_create(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_API_KEYS)
        if isinstance(acted, Response):
            return acted
        who = acted[0]
        username, password = await run_in_threadpool(keys.create_smtp, who)
        return await run_in_threadpool(lambda: page(request, who, smtp_made=(username, password)))

    @app.post("/keys/smtp/{cred_id}/revoke")
    async def smtp_revoke(request: Request, cred_id: str) -> Response:
        return await kit.act(
            request, Permission.MANAGE_API_KEYS, lambda who, _: keys.revoke_smtp(who, cred_id[:40]), "/keys"
        )

    @app.post("/keys/{key_id}/revoke")
    async def key_revoke(request: Request, key_id: str) -> Response:
        return await kit.act(
            request, Permission.MANAGE_API_KEYS, lambda who, _: keys.revoke(who, key_id[:40]), "/keys"
        )
