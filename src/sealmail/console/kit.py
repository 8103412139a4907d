"""The ``Kit`` every console page group is handed: rendering, redirects and the access checks.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sealmail.users.model import Session
from sealmail.users.roles import Permission


@dataclass(frozen=True, slots=True)
class Kit:
    """What every page group needs from the app: rendering, redirects and the access checks."""

    render: Callable[..., HTMLResponse]
    redirect: Callable[[Request, str], RedirectResponse]
    signed_in: Callable[[Request, Permission | None], "Session | Response"]
    # ``acting(request, permission, max_files=0)``: uploads only where a page allows them.
    acting: Callable[..., Awaitable["tuple[Session, Any] | Response"]]
    csrf: Callable[[Request], str]
