"""The patient's side of the unencrypted-by-request register, in the portal (``/p/plain``).

A patient signed in with an e-mailed code — so the address is proven theirs — may ask the
sender to use ordinary e-mail.  Asking records the request and shows the warning (its
digest is registered as shown); confirming records the confirmation; withdrawing revokes
it.  From the confirmation on, SecureLine sends that address, for this sender only, the
message itself instead of a portal notice (``evidence/plain.py``).  A session opened with a
passphrase has not proven the address and is refused.

The same page holds the patient's confidential-communication preferences (164.522(b),
``evidence/preferences.py``): "only through this portal" and "no text messages" may be set
and any standing preference withdrawn here; a redirect to another address needs that address
proven, so staff record it.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import ChoiceLoader, DictLoader, Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from sealmail.errors import Conflict, InvalidRequest
from sealmail.evidence.plain import WARNING, PlainRegister, PlainRequest
from sealmail.evidence.preferences import PreferenceRegister
from sealmail.evidence.registers import PlainState
from sealmail.portal import display
from sealmail.portal.access import PortalAccess, Session
from sealmail.portal.branding import Branding, branding
from sealmail.portal.options import PortalOptions
from sealmail.portal.web import STATUS_PAGES
from sealmail.tenancy.service import Tenancy
from sealmail.web import security

PLAIN_HTML = """{% extends "base.html" %}
{% block main %}
<p class="crumbs"><a href="{{ base }}/inbox?all=1">All messages</a></p>
<section class="card" aria-labelledby="heading">
  <h1 id="heading">Receive messages by regular e-mail</h1>
  {% if not verified %}
    <p>To change how {{ brand.organization }} writes to you, sign in with a code sent to your
      e-mail address.</p>
  {% elif state == PlainState.CONFIRMED %}
    <p id="plain-state">{{ brand.organization }} sends your messages to you by regular, unencrypted e-mail,
      as you asked on {{ confirmed_at }}.</p>
    <form method="post" action="{{ base }}/plain/withdraw">
      <input type="hidden" name="csrf" value="{{ csrf }}">
      <input type="hidden" name="request" value="{{ request_id }}">
      <button type="submit" class="primary">Go back to secure messages</button>
    </form>
  {% elif state == PlainState.WARNED %}
    <div class="alert" role="alert" id="plain-warning"><p>{{ warning }}</p></div>
    <form method="post" action="{{ base }}/plain/confirm">
      <input type="hidden" name="csrf" value="{{ csrf }}">
      <input type="hidden" name="request" value="{{ request_id }}">
      <button type="submit" class="primary" id="plain-confirm">I understand the risk:
        send me regular e-mail</button>
    </form>
    <form method="post" action="{{ base }}/plain/withdraw">
      <input type="hidden" name="csrf" value="{{ csrf }}">
      <input type="hidden" name="request" value="{{ request_id }}">
      <button type="submit">Keep using secure messages</button>
    </form>
  {% else %}
    <p>Messages from {{ brand.organization }} reach you through this secure site. You may instead ask for
      them by regular e-mail; we will first tell you the risk.</p>
    <form method="post" action="{{ base }}/plain/request">
      <input type="hidden" name="csrf" value="{{ csrf }}">
      <button type="submit" id="plain-request">Ask for regular e-mail</button>
    </form>
  {% endif %}
</section>
{% if verified %}
<section class="card" aria-labelledby="prefs-heading">
  <h2 id="prefs-heading">How {{ brand.organization }} may reach you</h2>
  {% if prefs %}
    <ul id="prefs">
    {% for p in prefs %}
      <li>{{ p.meaning | capitalize }}{% if p.alternative %}: {{ p.alternative }}{% endif %}
        <form method="post" action="{{ base }}/plain/prefs/withdraw">
          <input type="hidden" name="csrf" value="{{ csrf }}">
          <input type="hidden" name="request" value="{{ p.id }}">
          <button type="submit" id="pref-withdraw-{{ p.kind }}">Withdraw</button>
        </form>
      </li>
    {% endfor %}
    </ul>
  {% else %}
    <p id="prefs-none">You have not asked for anything special.</p>
  {% endif %}
  {% for kind, label in offers %}
    <form method="post" action="{{ base }}/plain/prefs/set">
      <input type="hidden" name="csrf" value="{{ csrf }}">
      <input type="hidden" name="request" value="{{ kind }}">
      <button type="submit" id="pref-{{ kind }}">{{ label }}</button>
    </form>
  {% endfor %}
  <p>To be written to at another e-mail address instead, ask {{ brand.organization }}: staff record it.</p>
</section>
{% endif %}
{% endblock %}
"""

# What the patient may set themselves (a redirect is recorded by staff, who verify the address).
OFFERS = (
    ("portal_only", "Reach me only through this secure site"),
    ("no_sms", "Do not send me text messages"),
)


def mount_plain(
    app: FastAPI,
    register: PlainRegister,
    tenancy: Tenancy,
    options: PortalOptions,
    preferences: PreferenceRegister | None = None,
) -> None:
    """Add ``/plain`` (and its preferences) to a portal app made by ``create_portal``."""
    prefs = preferences or PreferenceRegister(register.engine)
    access: PortalAccess = app.state.access
    names = security.CookieNames.for_(options.secure_cookies)
    loaders = [DictLoader({"plain.html": PLAIN_HTML}), PackageLoader("sealmail.portal", "templates")]
    env = display.install(
        Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True))
    )
    env.globals["PlainState"] = PlainState  # the page compares the request's state with the enum
    r = APIRouter()

    def render(request: Request, template: str, tenant_id: str, status: int, **ctx: Any) -> Response:
        try:
            row = tenancy.get_tenant(tenant_id)
            brand = branding(row.name, dict(row.settings))
        except Exception:  # noqa: BLE001 — an unknown tenant gets the neutral brand
            brand = Branding("Secure messages", "#0b5cad", None)
        base = request.scope.get("root_path", "")
        html = env.get_template(template).render(base=base, brand=brand, tenant_id=tenant_id, **ctx)
        csp = security.PAGE_CSP.format(logo=f" {brand.logo_origin}" if brand.logo_origin else "")
        return security.harden(HTMLResponse(html, status_code=status), csp)

    def session_of(request: Request) -> Session | Response:
        token = request.cookies.get(names.session)
        session, why = access.session(token) if token else (None, "none")
        if session is None:
            code, title = STATUS_PAGES["signed_out"]
            response = render(request, "status.html", "", code, kind="signed_out", title=title, why=why)
            security.clear_cookie(response, names.session, secure=options.secure_cookies)
            return response
        return session

    def standing(session: Session) -> PlainRequest | None:
        found = [
            q for q in register.requests(session.tenant_id, session.address) if q.state != PlainState.REVOKED
        ]
        return found[-1] if found else None

    @r.get("/plain")
    def plain_page(request: Request) -> Response:
        session = session_of(request)
        if isinstance(session, Response):
            return session
        current = standing(session) if session.address_verified else None
        mine = prefs.preferences(session.tenant_id, session.address, True) if session.address_verified else []
        offers = [(k, label) for k, label in OFFERS if k not in {p.kind for p in mine}]
        return render(
            request, "plain.html", session.tenant_id, 200, title="Regular e-mail", signed_in=True,
            verified=session.address_verified, state=current.state if current else None,
            request_id=current.id if current else "",
            confirmed_at=current.confirmed_at.isoformat() if current and current.confirmed_at else None,
            warning=WARNING, csrf=security.csrf_token(request.cookies[names.session]),
            prefs=mine, offers=offers,
        )  # fmt: skip

    async def step(request: Request, act: Any) -> Response:
        session = await run_in_threadpool(session_of, request)
        if isinstance(session, Response):
            return session
        form = await request.form(max_files=0, max_fields=5)
        if not security.same_origin(request) or not security.csrf_ok(
            request.cookies.get(names.session), form.get("csrf")
        ):
            return render(request, "status.html", session.tenant_id, 403, kind="forbidden", title="Forbidden")
        if not session.address_verified:
            return RedirectResponse(request.scope.get("root_path", "") + "/plain", status_code=303)
        try:
            await run_in_threadpool(act, session, str(form.get("request", ""))[:40])
        except (Conflict, InvalidRequest):
            pass  # a second click, or a step already taken: the page shows where things stand
        return RedirectResponse(request.scope.get("root_path", "") + "/plain", status_code=303)

    @r.post("/plain/request")
    async def plain_request(request: Request) -> Response:
        return await step(request, lambda s, _id: register.request(s.tenant_id, s.address, s.actor, "portal"))

    def mine(session: Session, request_id: str) -> bool:
        current = standing(session)
        return current is not None and current.id == request_id

    @r.post("/plain/confirm")
    async def plain_confirm(request: Request) -> Response:
        def act(s: Session, request_id: str) -> None:
            if mine(s, request_id):
                register.confirm(s.tenant_id, request_id, s.actor, "portal")

        return await step(request, act)

    @r.post("/plain/withdraw")
    async def plain_withdraw(request: Request) -> Response:
        def act(s: Session, request_id: str) -> None:
            if mine(s, request_id):
                register.revoke(s.tenant_id, request_id, s.actor, "portal", "withdrawn by the patient")

        return await step(request, act)

    @r.post("/plain/prefs/set")
    async def prefs_set(request: Request) -> Response:
        def act(s: Session, kind: str) -> None:
            if kind in {k for k, _ in OFFERS}:
                prefs.record(s.tenant_id, s.address, kind, s.actor, "portal")

        return await step(request, act)

    @r.post("/plain/prefs/withdraw")
    async def prefs_withdraw(request: Request) -> Response:
        def act(s: Session, preference_id: str) -> None:
            # Only the signed-in patient's own standing preference: another id is ignored.
            if preference_id in {p.id for p in prefs.preferences(s.tenant_id, s.address, True)}:
                prefs.revoke(s.tenant_id, preference_id, s.actor, "portal", "withdrawn by the patient")

        return await step(request, act)

    app.include_router(r)
    catch_all = [rt for rt in app.router.routes if isinstance(rt, Route) and rt.path == "/{token}"]
    for rt in catch_all:  # the notice link matches any segment: it stays last
        app.router.routes.remove(rt)
        app.router.routes.append(rt)
