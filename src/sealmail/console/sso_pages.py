"""Single sign-on in the console: the "sign in with your organization" step, the OP's
callback, and the owner's settings page.

The callback arrives as a top-level navigation from the OP's site, so the cookie that binds
it to the browser that started is ``SameSite=Lax`` (a Strict cookie would not be sent),
HttpOnly, ten minutes long, and holds a random value whose hash the flow keeps.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from sealmail.console.kit import Kit
from sealmail.errors import InvalidRequest
from sealmail.users import roles
from sealmail.users.oidc import OidcError, check_issuer
from sealmail.users.roles import Permission
from sealmail.users.service import Users
from sealmail.users.sso import SingleSignOn


@dataclass(frozen=True, slots=True)
class SignInHooks:
    """What the SSO steps borrow from the console's sign-in: the pre-sign-in form check and
    turning a session token into the signed-in cookie."""

    pre_form: Callable[[Request], Awaitable[Any]]
    signed_in_as: Callable[[Request, str], Response]
    secure: bool


def sso_pages(app: FastAPI, users: Users, sso: SingleSignOn, kit: Kit, hooks: SignInHooks) -> None:
    binding_cookie = ("__Host-" if hooks.secure else "") + "sealmail_console_sso"

    @app.post("/signin/sso")
    async def sso_start(request: Request) -> Response:
        form = await hooks.pre_form(request)
        started = await sso.start(str(form.get("email", ""))[:320])
        if started is None:
            return kit.redirect(request, "/signin?error=sso")
        response = RedirectResponse(started.url, status_code=303)
        response.set_cookie(
            binding_cookie, started.binding, max_age=600, path="/", secure=hooks.secure, httponly=True,
            samesite="lax",
        )  # fmt: skip
        return response

    @app.get("/sso/callback")
    async def sso_callback(
        request: Request, state: str = "", code: str = "", iss: str | None = None
    ) -> Response:
        token = await sso.finish(state, code, request.cookies.get(binding_cookie, ""), iss)
        response = hooks.signed_in_as(request, token) if token else kit.redirect(request, "/signin?error=sso")
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
