"""HTTP-level protections of the portal: cookies, CSRF tokens, security headers.

* Cookies are HttpOnly and SameSite=Strict, ``Secure`` with the ``__Host-`` prefix when
  served over https (the prefix makes the browser refuse a cookie planted by a sibling
  subdomain or over http).  Plain-http cookies exist only for tests and local use.
* CSRF: a synchronizer token derived from the cookie the form acts under (the sign-in
  challenge or the session): ``HMAC-SHA256(cookie token, "csrf")``.  A cross-site page
  can neither read the cookie nor compute the token; nothing extra is stored.  The
  ``Origin`` header, when a browser sends it, must also be ours.
* Every page: a CSP with no script source at all, no framing by others, no referrer
  to other sites.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'{logo}; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def body_csp(images: bool) -> str:
    """The policy of the sandboxed message-body document."""
    img = "https: http: data:" if images else "'none'"
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {img}; font-src 'none'; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox"
    )


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    challenge: str

    @classmethod
    def for_(cls, secure: bool) -> CookieNames:
        prefix = "__Host-" if secure else ""
        return cls(f"{prefix}sealmail_portal", f"{prefix}sealmail_signin")


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict"
    )


def clear_cookie(response: Response, name: str, *, secure: bool) -> None:
    response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="strict")


def csrf_token(cookie_value: str) -> str:
    return hmac.new(cookie_value.encode(), b"csrf", hashlib.sha256).hexdigest()


def csrf_ok(cookie_value: str | None, submitted: object) -> bool:
    if not cookie_value or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(csrf_token(cookie_value), submitted)


def same_origin(request: Request) -> bool:
    """A browser's ``Origin`` (sent on every cross-site POST) must name this host."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # "null" comes from sandboxed/opaque contexts, which never post our forms.
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _baseline(csp: str, *, frame: bool) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        # "same-origin", not "no-referrer": with no-referrer browsers send ``Origin: null``
        # on our own form posts, defeating the same-origin check; other sites still learn
        # nothing (and portal URLs carry no PHI).
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "SAMEORIGIN" if frame else "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        # PHI must not linger in shared or back-button caches (HIPAA §164.312(a)).
        "Cache-Control": "no-store",
    }


def harden(response: Response, csp: str, *, frame: bool = False) -> Response:
    h = response.headers
    for name, value in _baseline(csp, frame=frame).items():
        if name == "Content-Security-Policy":
            h.setdefault(name, value)
        else:
            h[name] = value
    return response


# What a response no route hardened gets (redirects, framework errors): nothing to
# render, nothing to frame.
FALLBACK_CSP = "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


class HardenEveryResponse:
    """ASGI middleware: every portal response carries the security headers.

    Routes that pick their own policy (pages, the framed body, downloads) have set a CSP
    already and are left alone; anything else (the ``/p/{token}`` redirect, sign-in
    redirects, 405s) gets the full baseline, so no portal response is ever unprotected.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    for name, value in _baseline(FALLBACK_CSP, frame=False).items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_hardened)
