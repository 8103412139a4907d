"""The API with the console mounted, served by uvicorn on 127.0.0.1 port 0, and a browser-like
client that signs in with a password and TOTP codes from pyotp (the independent authenticator).

The console's clock is injected (``Clock``) so idle logoff and TOTP steps are tested without
waiting; the codes pyotp computes use the same clock.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import uvicorn
from tests.support.client_tls import default_context
from tests.support.uvicorn_thread import ThreadServer
from tests.support.waiting import wait_until

from sealmail import runtime
from sealmail.app import Services, build_console, build_sso, build_users
from sealmail.intake.api.app import create_api
from sealmail.users.passkeys import RelyingParty
from sealmail.users.service import Users
from sealmail.users.sso import SingleSignOn

PASSWORD = "lantern orchard pebble"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SECRET = re.compile(r'id="totp-secret"[^>]*>([^<]+)<')


@dataclass
class Clock:
    t: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


@dataclass
class Console:
    url: str  # the API origin; the console is at {url}/console
    users: Users
    clock: Clock
    sso: SingleSignOn | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30, verify=default_context())


@contextmanager
def console_server(services: Services, *, as_served: bool = False) -> Iterator[Console]:
    """``as_served``: the API role's app exactly as ``sealmail serve`` builds it (real clock)."""
    clock = Clock()
    users = build_users(services, clock=None if as_served else clock)
    sso = build_sso(services, users)
    if as_served:
        api = runtime.api_app(services)
    else:
        api = create_api(services)
        api.mount("/console", build_console(services, users, sso))
    server = ThreadServer(uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 10, "uvicorn did not start")
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        # Passkeys are bound to the origin the client sees, known only once the port is.  An
        # RP ID is a host name, never an address: the HTTP suites' software authenticator
        # signs for "localhost" (the browser suite reaches the server as localhost itself).
        users.rp = RelyingParty("localhost", f"http://{host}:{port}")
        sso.redirect_uri = f"http://{host}:{port}/console/sso/callback"
        yield Console(f"http://{host}:{port}", users, clock, sso)
    finally:
        server.stop()
        thread.join(10)


def csrf(page: httpx.Response) -> str:
    m = CSRF.search(page.text)
    assert m, f"no CSRF token on {page.url}"
    return html.unescape(m.group(1))


@dataclass
class Person:
    email: str
    secret: str
    http: httpx.Client


def enrol(console: Console, token: str, email: str, password: str = PASSWORD) -> Person:
    """Open a one-time link, choose a password, confirm a TOTP code: a signed-in client."""
    c = console.client()
    r = c.get(f"/console/welcome/{token}")
    assert r.status_code == 303 and r.headers["location"] == "/console/enroll", r.text
    page = c.get("/console/enroll")
    assert page.status_code == 200, page.text
    m = SECRET.search(page.text)
    assert m
    secret = m.group(1).replace(" ", "")
    code = pyotp.TOTP(secret).at(console.clock())
    done = c.post("/console/enroll", data={"csrf": csrf(page), "password": password, "code": code})
    assert done.status_code == 200 and 'id="recovery-codes"' in done.text, done.text
    # The next code must come from a later step: each works once.
    console.clock.advance(seconds=30)
    return Person(email, secret, c)


def sign_in(console: Console, email: str, password: str, code: str) -> httpx.Client:
    c = console.client()
    page = c.get("/console/signin")
    r = c.post("/console/signin", data={"csrf": csrf(page), "email": email, "password": password})
    assert r.status_code == 303, r.text
    if r.headers["location"] != "/console/signin/code":
        return c
    page = c.get("/console/signin/code")
    c.post("/console/signin/code", data={"csrf": csrf(page), "code": code})
    return c


def person(console: Console, tenant_id: str, email: str, role: str) -> Person:
    """Someone of ``role`` in the tenant, invited and enrolled: a signed-in client."""
    _, token = console.users.invite(tenant_id, email, "", role, actor="test")
    return enrol(console, token, email)


def invite_as(console: Console, tenant_id: str, role: str) -> Person:
    """A person of ``role`` (``<role>@clinic.example``), invited and enrolled."""
    email = f"{role}@clinic.example"
    _, token = console.users.invite(tenant_id, email, role, role, actor="test")
    return enrol(console, token, email)
