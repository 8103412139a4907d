"""The public pages assembled for a role: the portal with its file pages, tracking, unsubscribe.

The portal, files and engagement features each make their own pages; putting them on one
origin is the role's job (the API process with ``portal_on_api``, or ``sealmail serve
--role portal``), so no feature imports another's pages.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from typing import Protocol

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount

from sealmail.engagement import web as engagement_web
from sealmail.engagement.service import Engagement
from sealmail.evidence.service import Evidence
from sealmail.files.web import FileServices, mount_files
from sealmail.forms.web import FormSiteServices, create_forms_app
from sealmail.limits.service import Limiter
from sealmail.portal.access import Clock
from sealmail.portal.options import PortalOptions
from sealmail.portal.plain_web import mount_plain
from sealmail.portal.web import PortalServices, create_portal
from sealmail.web.guards import BodyLimit, NoNul
from sealmail.web.throttle import PerClientLimit


class SiteServices(PortalServices, FileServices, FormSiteServices, Protocol):
    """What the public pages are handed by the composition root."""

    @property
    def engagement(self) -> Engagement: ...
    @property
    def evidence(self) -> Evidence: ...
    @property
    def limiter(self) -> Limiter: ...
    @property
    def public_per_minute(self) -> int: ...
    @property
    def sms_callbacks(self) -> FastAPI | None: ...
    @property
    def sms_callback_per_minute(self) -> int: ...
    @property
    def max_request_bytes(self) -> int: ...


def create_portal_app(
    services: SiteServices, options: PortalOptions | None = None, *, clock: Clock | None = None
) -> FastAPI:
    """The portal pages and the file pages, one app to mount at ``/p``."""
    portal = create_portal(services, options, clock=clock)
    mount_files(portal, services, options)
    mount_plain(
        portal,
        services.evidence.plain,
        services.tenancy,
        options or services.portal_options,
        services.evidence.preferences,
    )
    return portal


def mount_public(site: FastAPI, services: SiteServices) -> None:
    """``/p`` (portal and files), ``/f`` (hosted forms), ``/t`` and ``/u`` (tracking and
    unsubscribe) and ``/sms`` (provider callbacks), each limited per client address."""
    per_minute = services.public_per_minute
    portal = create_portal_app(services)
    site.router.routes.append(Mount("/p", app=PerClientLimit(portal, services.limiter, per_minute, "portal")))
    forms = create_forms_app(services)
    site.router.routes.append(Mount("/f", app=PerClientLimit(forms, services.limiter, per_minute, "forms")))
    if services.sms_callbacks is not None:
        # The SMS provider's signed status and inbound callbacks (issue 17).  Counted before
        # the signature is checked: a flood of forged callbacks costs a counter, not an HMAC
        # and a form parse each.  Its own, larger limit: the provider sends every receipt
        # from a few addresses.
        callbacks = PerClientLimit(
            services.sms_callbacks, services.limiter, services.sms_callback_per_minute, "sms-callbacks"
        )
        site.router.routes.append(Mount("/sms", app=callbacks))
    engagement_web.mount(site, services.engagement, services.tenancy, services.limiter, per_minute)


def create_portal_site(services: SiteServices) -> FastAPI:
    """The portal on its own origin (``sealmail serve --role portal``): mounted at ``/p``."""
    site = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    mount_public(site, services)
    # The guards the API process puts in front of these same pages (``create_api``): without
    # them a NUL in a form or theme id reached PostgreSQL (a 500) and a reply or sign-in post
    # of any size was parsed to disk before its CSRF token was even looked at.
    site.add_middleware(BodyLimit, limit=services.max_request_bytes)
    site.add_middleware(NoNul)

    @site.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/p/inbox", status_code=303)

    return site
