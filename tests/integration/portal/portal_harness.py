"""A whole Sealmail for portal tests: API + portal over HTTP, a worker, loopback MX sinks.

* ``plain.example`` (the patient) has an MX without STARTTLS, so SecureLine sends a
  portal notice there; the sign-in code mail lands there too.
* ``clinic.example`` (the sender) has an MX with a certificate from the test CA, so a
  portal reply travels over verified TLS.
No ``from __future__ import annotations``: FastAPI reads ``build_app``'s closures at runtime.
The server binds 127.0.0.1 port 0 before settings are built, so the notice links point
at it; every server and service started here is stopped by the context managers.
"""

import asyncio
import base64
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Header
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import ReceivedMessage, SmtpSink
from tests.support.uvicorn_thread import ThreadServer
from tests.support.waiting import wait_until

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.config import Settings
from sealmail.errors import AuthenticationRequired, PermissionDenied
from sealmail.intake.api.app import create_api
from sealmail.intake.portal_site import create_portal_app, create_portal_site
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.portal import api as portal_admin
from sealmail.portal.options import PortalOptions
from sealmail.tenancy.service import Principal

PATIENT = "patient@plain.example"
SENDER = "Dr Smith <dr.smith@clinic.example>"
LINK = re.compile(rb"(http://127\.0\.0\.1:\d+/p/[A-Za-z0-9_-]{40,})")
CODE = re.compile(r"^\s+(\d{6})\s*$", re.M)


@dataclass
class Stack:
    services: Services
    settings: Settings
    tenant: TenantFixture
    patient_sink: SmtpSink
    clinic_sink: SmtpSink
    base_url: str
    app: FastAPI

    def send(self, **over: Any) -> str:
        body = MessageIn.model_validate(
            {
                "from": SENDER,
                "to": [PATIENT],
                "subject": "Your lab results from March",
                "text": "Your potassium level is normal.",
                "stream": "phi",
                **over,
            }
        )
        return self._submit(compose.from_message(body, "sealmail.test", 1000))

    def send_renamed(self, renames: dict[bytes, bytes], **over: Any) -> str:
        """``send``, with bytes of the composed MIME replaced: how mail from elsewhere carries
        what the API refuses (a bidi control in a file name, say)."""
        body = MessageIn.model_validate(
            {"from": SENDER, "to": [PATIENT], "subject": "Your lab results from March",
             "text": "Your potassium level is normal.", "stream": "phi", **over}
        )  # fmt: skip
        sub = compose.from_message(body, "sealmail.test", 1000)
        raw = sub.raw
        for old, new in renames.items():
            assert old in raw, old
            raw = raw.replace(old, new)
        return self._submit(replace(sub, raw=raw))

    def _submit(self, sub: Any) -> str:
        result, _ = self.services.messages.submit(self.tenant.principal, sub)
        return result.id

    def run_worker(self) -> int:
        async def go() -> int:
            transport = build_transport(self.settings)
            try:
                worker = build_worker(self.services, transport, self.settings, name="portal-test")
                return await worker.run_until_idle(timeout=30)
            finally:
                await transport.close()

        # A thread of its own: Playwright's sync API keeps an event loop in this one.
        result: list[int] = []
        worker = threading.Thread(target=lambda: result.append(asyncio.run(go())))
        worker.start()
        worker.join(60)
        assert result, "the worker did not finish"
        return result[0]

    def notice_link(self, mid: str) -> str:
        """Deliver pending mail and return the link of ``mid``'s portal notice."""
        self.run_worker()
        found: list[str] = []

        def has_notice() -> bool:
            for m in self.patient_sink.messages:
                if f"X-Sealmail-Message-Id: {mid}".encode() in m.data:
                    hit = LINK.search(m.data.replace(b"=\r\n", b""))
                    if hit:
                        found.append(hit.group(1).decode())
                        return True
            return False

        wait_until(has_notice, 10, f"no portal notice for {mid} at the patient's MX")
        return found[0]

    def latest_code(self, already: int) -> str:
        """Deliver pending mail and return the code of the newest code mail after ``already``."""
        self.run_worker()
        wait_until(
            lambda: len(self.code_mails()) > already,
            10,
            f"no sign-in code mail arrived: {[m.data[:600] for m in self.patient_sink.messages]}",
        )
        text = _text(self.code_mails()[-1])
        hit = CODE.search(text)
        assert hit, text
        return hit.group(1)

    def code_mails(self) -> list[ReceivedMessage]:
        return [m for m in self.patient_sink.messages if b"sign-in code" in m.data]

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.tenant.api_key}"},
            verify=default_context(),
        )


def _text(m: ReceivedMessage) -> str:
    import email
    import email.policy

    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    return str(part.get_content()) if part is not None else ""


def attachment(name: str, data: bytes, ctype: str) -> dict[str, str]:
    return {"filename": name, "content_type": ctype, "content": base64.b64encode(data).decode()}


def build_app(services: Services) -> FastAPI:
    """What the composition root will do: the API, the sender-side routes, the portal at /p."""
    api = create_api(services)

    # The API's ``need`` factory is local to create_api; the same dependency, rebuilt here.
    def principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationRequired("send `Authorization: Bearer <API key>`")
        return services.tenancy.authenticate(authorization[7:].strip())

    def need(scope: str) -> Any:
        def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
            if not who.has(scope):
                raise PermissionDenied(f"this API key lacks the `{scope}` scope")
            return who

        return Depends(check)

    api.include_router(portal_admin.router(services.portal_lifecycle, need))
    api.mount("/p", create_portal_app(services, PortalOptions(secure_cookies=False)))
    return api


@contextmanager
def serve(app: FastAPI, sock: socket.socket) -> Iterator[None]:
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = ThreadServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, "uvicorn did not start")
        yield
    finally:
        server.stop()
        thread.join(10)
        sock.close()


@contextmanager
def portal_site(settings: Settings, sock: socket.socket) -> Iterator[Services]:
    """The portal role exactly as ``sealmail serve --role portal`` builds it, served on ``sock``."""
    services = build_services(settings)
    try:
        with serve(create_portal_site(services), sock):
            yield services
    finally:
        services.close()


@contextmanager
def portal_stack(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm, **over: Any
) -> Iterator[Stack]:
    sinks = mx.start({"127.0.0.2": {"cert": ca.issue("mx.clinic.example")}, "127.0.0.3": {}})
    dns.add("clinic.example", "MX", "10 mx.clinic.example.")
    dns.add("mx.clinic.example", "A", "127.0.0.2")
    dns.add("plain.example", "MX", "10 mx.plain.example.")
    dns.add("mx.plain.example", "A", "127.0.0.3")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    values: dict[str, Any] = {
        "outbound_mode": "mx",
        "dns_nameservers": [f"{dns.address[0]}:{dns.address[1]}"],
        "mx_port": mx.port,
        "tls_ca_file": ca.ca_file,
        "mta_sts_enabled": False,
        "smtp_hostname": "out.sealmail.test",
        "portal_base_url": base,
        **over,
    }
    settings = make_settings(tmp_path, db_url, **values)
    services = build_services(settings)
    try:
        tenant = make_tenant(services, name="Riverside Clinic")
        # The patient's MX offers no STARTTLS, so every notice goes below the phi level and
        # (by default) no code could be emailed.  These tests are about reading and
        # replying, so the tenant loosens that explicitly; test_portal_fallback.py tests
        # the strict default against a STARTTLS-stripping attacker.
        services.tenancy.update_settings(
            tenant.id, {"secureline": {"portal_weak_notice": "allow_email_code"}}, actor="test"
        )
        app = build_app(services)
        with serve(app, sock):
            yield Stack(services, settings, tenant, sinks["127.0.0.3"], sinks["127.0.0.2"], base, app)
    finally:
        services.close()
