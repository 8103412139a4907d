"""The ``Kit`` every console page group is handed: rendering, redirects and the access checks.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sealmail.users.model import Session
from sealmail.users.roles import Permission

# Fields a posted console form may carry (a page whose form has more says so, per route):
# the multipart parser stops a flood of fields before any of them is read.
MAX_FORM_FIELDS = 20


@dataclass(frozen=True, slots=True)
class Kit:
    """What every page group needs from the app: rendering, redirects and the access checks."""

    render: Callable[..., HTMLResponse]
    redirect: Callable[[Request, str], RedirectResponse]
    signed_in: Callable[[Request, Permission | None], "Session | Response"]
    # ``acting(request, permission, max_files=0, max_fields=MAX_FORM_FIELDS)``: uploads only
    # where a page allows them, and more fields only where a page's form has them.
    acting: Callable[..., Awaitable["tuple[Session, Any] | Response"]]
    csrf: Callable[[Request], str]

    async def act(
        self,
        request: Request,
        permission: Permission,
        do: Callable[[Session, Any], object],
        then: str | Callable[[Any], str],
    ) -> Response:
        """The common state-changing post: ``acting`` (role, CSRF, Origin), then ``do(who, form)``
        in a worker thread, then a redirect to ``then`` (a path under the console, or a function
        of the form that gives one: back to the page the form was on)."""
        acted = await self.acting(request, permission)
        if isinstance(acted, Response):
            return acted
        await run_in_threadpool(do, *acted)
        return self.redirect(request, then if isinstance(then, str) else then(acted[1]))

    def page(
        self, request: Request, template: str, who: Session, manage: Permission, **ctx: Any
    ) -> HTMLResponse:
        """A signed-in page with the form token and whether ``who`` may change what it shows."""
        return self.render(
            request, template, who=who, csrf=self.csrf(request), may_manage=who.may(manage), **ctx
        )


@dataclass(frozen=True, slots=True)
class Cookies:
    session: str
    signin: str
    pre: str

    @classmethod
    def for_(cls, secure: bool) -> "Cookies":
        # __Host-: Secure, path=/, no Domain — a sibling subdomain cannot plant one (RFC 6265bis §4.1.3.2).
        p = "__Host-" if secure else ""
        return cls(f"{p}sealmail_console", f"{p}sealmail_console_signin", f"{p}sealmail_console_pre")
