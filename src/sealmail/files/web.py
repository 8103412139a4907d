"""Portal pages for shared files: the reader's list, one file's page, ranged download.

Mounted into the portal app by ``mount_files(app, services, options)`` where the role
assembles the public pages (``intake.portal_site``); it reuses the portal's
``PortalAccess`` (``app.state.access``), cookie names, CSRF tokens, security headers and
layout, so a file opens with exactly the sign-in that opens the message carrying it.
URLs carry only the opaque file id; the filename (PHI) appears only in the signed-in page
body and the download's Content-Disposition, never in a URL, a title or a log line.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import ChoiceLoader, DictLoader, Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from sealmail.errors import NotFound
from sealmail.files import http
from sealmail.files.access import ReaderFiles
from sealmail.files.errors import FileUnreadable
from sealmail.files.service import FileShares
from sealmail.portal import display
from sealmail.portal.access import PortalAccess, Session
from sealmail.portal.branding import Branding, branding
from sealmail.portal.options import PortalOptions
from sealmail.portal.web import STATUS_PAGES, _size
from sealmail.tenancy.service import Tenancy
from sealmail.web import security

FILES_HTML = """{% extends "base.html" %}
{% block main %}
<p class="crumbs"><a href="{{ base }}/inbox?all=1">All messages</a></p>
<section class="card" aria-labelledby="heading">
  <h1 id="heading">{{ "Shared file" if one else "Files shared with you" }}</h1>
  {% if not files %}<p>There are no files for you at the moment.</p>{% endif %}
  {% if broken %}<p class="alert error" role="alert">This file could not be checked as intact,
    so it is not offered for download. Please ask the sender to share it again.</p>{% endif %}
  <ul class="files">
  {% for f in files %}
    <li><a href="{{ base }}/files/{{ f.id }}/download" download><bdi>{{ f.filename|shown }}</bdi></a>
        <span class="meta">{{ f.content_type }}, {{ size(f.size) }}</span>
        <span class="meta">SHA-256 {{ f.sha256 }}</span></li>
  {% endfor %}
  </ul>
  {% if files %}<p class="meta">An interrupted download can be resumed: your browser asks only for
    the part it is missing.</p>{% endif %}
</section>
{% endblock %}
"""


class FileServices(Protocol):
    """What the file pages are handed by the composition root."""

    @property
    def file_shares(self) -> FileShares: ...
    @property
    def tenancy(self) -> Tenancy: ...
    @property
    def portal_options(self) -> PortalOptions: ...


def mount_files(app: FastAPI, services: FileServices, options: PortalOptions | None = None) -> None:
    """Add the file routes to a portal app made by ``create_portal``."""
    opts = options or services.portal_options
    access: PortalAccess = app.state.access
    readers = ReaderFiles(services.file_shares)
    app.state.files = readers
    names = security.CookieNames.for_(opts.secure_cookies)
    env = Environment(
        loader=ChoiceLoader(
            [DictLoader({"files.html": FILES_HTML}), PackageLoader("sealmail.portal", "templates")]
        ),
        autoescape=select_autoescape(default_for_string=True, default=True),
    )
    display.install(env)
    r = APIRouter()

    def brand_for(tenant_id: str) -> Branding:
        try:
            row = services.tenancy.get_tenant(tenant_id)
        except NotFound:
            return Branding("Secure messages", "#0b5cad", None)
        return branding(row.name, dict(row.settings))

    def render(request: Request, template: str, tenant_id: str | None, status: int, **ctx: Any) -> Response:
        brand = brand_for(tenant_id) if tenant_id else Branding("Secure messages", "#0b5cad", None)
        base = request.scope.get("root_path", "")
        html = env.get_template(template).render(base=base, brand=brand, tenant_id=tenant_id, **ctx)
        csp = security.PAGE_CSP.format(logo=f" {brand.logo_origin}" if brand.logo_origin else "")
        return security.harden(HTMLResponse(html, status_code=status), csp)

    def status_page(request: Request, kind: str, tenant_id: str | None = None, **ctx: Any) -> Response:
        code, title = STATUS_PAGES[kind]
        response = render(request, "status.html", tenant_id, code, kind=kind, title=title, **ctx)
        if kind == "signed_out":
            security.clear_cookie(response, names.session, secure=opts.secure_cookies)
        return response

    def session_of(request: Request) -> tuple[Session | None, str]:
        token = request.cookies.get(names.session)
        return access.session(token) if token else (None, "none")

    def page(
        request: Request, session: Session, files: list[Any], *, one: bool, broken: bool = False
    ) -> Response:
        return render(
            request,
            "files.html",
            session.tenant_id,
            500 if broken else 200,
            title="Shared files",
            signed_in=True,
            csrf=security.csrf_token(request.cookies[names.session]),
            files=files,
            one=one,
            broken=broken,
            size=_size,
        )

    @r.get("/files")
    def list_files(request: Request) -> Response:
        session, why = session_of(request)
        if session is None:
            return status_page(request, "signed_out", why=why)
        return page(request, session, readers.list(session), one=False)

    @r.get("/files/{file_id}")
    def one_file(request: Request, file_id: str) -> Response:
        session, why = session_of(request)
        if session is None:
            return status_page(request, "signed_out", why=why)
        found = readers.get(session, file_id)
        if found is None:
            return status_page(request, "not_found", session.tenant_id)
        return page(request, session, [found[0]], one=True)

    @r.get("/files/{file_id}/download")
    async def download(request: Request, file_id: str) -> Response:
        session, why = await run_in_threadpool(session_of, request)
        if session is None:
            return status_page(request, "signed_out", why=why)
        found = await run_in_threadpool(readers.get, session, file_id)
        if found is None:
            return status_page(request, "not_found", session.tenant_id)
        opened, hold = found
        try:
            response, rng = await http.ranged_download(
                opened, request.headers.get("range"), request.headers.get("if-range")
            )
        except FileUnreadable:
            return page(request, session, [], one=True, broken=True)
        if response.status_code != 416:
            first = rng.start if rng else 0
            length = rng.length if rng else opened.size
            await run_in_threadpool(readers.record_download, session, hold, opened, first, length)
        return security.harden(response, "default-src 'none'; sandbox")

    app.include_router(r)
    _catch_all_last(app.router.routes)


def _catch_all_last(routes: list[BaseRoute]) -> None:
    # The portal's notice-link route ``/{token}`` matches any single segment, so it must
    # stay after ``/files`` whichever order the routes were added in.
    catch_all = [rt for rt in routes if isinstance(rt, Route) and rt.path == "/{token}"]
    for rt in catch_all:
        routes.remove(rt)
        routes.append(rt)
