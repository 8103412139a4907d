"""Single sign-on in the console: the "sign in with your organization" step, the OP's
callback, and the owner's settings page.

The callback arrives as a top-level navigation from the OP's site, so the cookie that binds
it to the browser that started is ``SameSite=Lax`` (a Strict cookie would not be sent),
HttpOnly, ten minutes long, and holds a random value whose hash the flow keeps.

The start does not redirect to the OP either: the sign-in page's CSP says ``form-action
'self'`` and browsers hold a form post's redirects to it, so it answers a page of ours that
moves on to the OP.  For a like reason the callback does not redirect once it has set the ``SameSite=Strict``
session (or second-factor) cookie: a redirect still belongs to the navigation the OP's site
started, and the browser would not send the new cookie with it.  It answers a small page of
our own that moves on by ``<meta http-equiv="refresh">`` (no script, so the strict CSP
holds), a navigation this site starts, which carries the cookie.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.errors import InvalidRequest
from sealmail.users import roles
from sealmail.users.model import Stage
from sealmail.users.oidc import OidcError, check_issuer
from sealmail.users.roles import Permission
from sealmail.users.service import Users
from sealmail.users.sso import SingleSignOn


@dataclass(frozen=True, slots=True)
class SignInHooks:
    """What the SSO steps borrow from the console's sign-in: the pre-sign-in form check and
    its two cookies (signed in; still short of the second factor, as after a password)."""

    pre_form: Callable[[Request], Awaitable[Any]]
    set_session: Callable[[Response, str], None]  # the signed-in cookie
    set_signin: Callable[[Response, str], None]  # the cookie of a sign-in short of its second factor
    secure: bool


def sso_pages(app: FastAPI, users: Users, sso: SingleSignOn, kit: Kit, hooks: SignInHooks) -> None:
    binding_cookie = ("__Host-" if hooks.secure else "") + "sealmail_console_sso"

    def onward(request: Request, path: str, leaving: bool = False) -> Response:
        target = path if leaving else request.scope.get("root_path", "") + path
        title = "Going to your organization's sign-in" if leaving else "Signing you in"
        return kit.render(request, "sso_continue.html", title=title, target=target, leaving=leaving)

    @app.post("/signin/sso")
    async def sso_start(request: Request) -> Response:
        form = await hooks.pre_form(request)
        started = await sso.start(str(form.get("email", ""))[:320])
        if started is None:
            return kit.redirect(request, "/signin?error=sso")
        # A page of ours moving on to the OP, not a redirect: the sign-in form's CSP allows
        # ``form-action 'self'`` only, and browsers hold a form's redirects to it.
        response = onward(request, started.url, leaving=True)
        response.set_cookie(
            binding_cookie, started.binding, max_age=600, path="/", secure=hooks.secure, httponly=True,
            samesite="lax",
        )  # fmt: skip
        return response

    @app.get("/sso/callback")
    async def sso_callback(
        request: Request, state: str = "", code: str = "", iss: str | None = None
    ) -> Response:
        done = await sso.finish(state, code, request.cookies.get(binding_cookie, ""), iss)
        response: Response
        if done is None:
            response = kit.redirect(request, "/signin?error=sso")
        elif done.stage is Stage.MFA:  # the OP reported no MFA: the person's own factor is asked
            response = onward(request, "/signin/code")
            hooks.set_signin(response, done.token)
        else:
            response = onward(request, "/")
            hooks.set_session(response, done.token)
        response.delete_cookie(binding_cookie, path="/", secure=hooks.secure, httponly=True, samesite="lax")
        return response

    @app.get("/sso")
    def sso_settings(request: Request) -> Response:
        who = kit.signed_in(request, Permission.MANAGE_SIGNIN_POLICY)
        if isinstance(who, Response):
            return who
        return kit.render(
            request, "sso.html", title="Single sign-on", who=who, config=users.sso_settings(who.tenant_id),
            roles=[(r.value, roles.LABELS[r]) for r in roles.Role if r is not roles.Role.OWNER],
            callback=sso.redirect_uri, csrf=kit.csrf(request),
        )  # fmt: skip

    @app.post("/sso")
    async def sso_save(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_SIGNIN_POLICY)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        try:
            issuer = check_issuer(str(form.get("issuer", "")).strip()[:400])
        except OidcError as exc:
            raise InvalidRequest(exc.reason) from exc
        role = str(form.get("default_role", ""))[:20] or None
        await run_in_threadpool(
            lambda: users.configure_sso(
                who, issuer=issuer, client_id=str(form.get("client_id", ""))[:300],
                client_secret=str(form.get("client_secret", ""))[:600],
                email_domain=str(form.get("email_domain", ""))[:253], default_role=role,
                enabled=form.get("enabled") == "on", require_mfa=form.get("require_mfa") == "on",
            )
        )  # fmt: skip
        return kit.redirect(request, "/sso")
