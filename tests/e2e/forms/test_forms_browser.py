"""A patient fills a hosted form in Chromium; the clinic's mailbox gets it OpenPGP-encrypted.

Real parts throughout: the API + hosted form over HTTP (uvicorn on loopback), Chromium
with JavaScript switched off (the form must work without it), the worker delivering
through loopback DNS to an MX sink with a verified certificate, and GnuPG decrypting
what arrived.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.conftest import make_settings, make_tenant
from tests.e2e.portal import conftest as portal_browser
from tests.integration.delivery import conftest as delivery
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import serve
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.gpg import GnuPG

from sealmail.app import build_services, build_transport, build_worker
from sealmail.intake.api.app import create_api

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="GnuPG (gpg) is not installed")

# The delivery suite's DNS, CA and MX farm and the portal suite's Chromium, re-exported.
ca, dns, mx = delivery.ca, delivery.dns, delivery.mx
browser = portal_browser.browser
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
ANSWER = "Sharp pain in the left knee after running"


@pytest.fixture
def gpg(tmp_path: Path) -> Iterator[GnuPG]:
    g = GnuPG(tmp_path / "gnupg")
    yield g
    g.close()


FORM = {
    "title": "New patient intake",
    "intro": "Tell us about your visit.",
    "recipients": ["intake@pgp.example"],
    "sender": "forms@clinic.example",
    "min_fill_seconds": 0,
    "fields": [
        {"name": "full_name", "label": "Full name", "type": "text", "required": True},
        {"name": "birth_date", "label": "Date of birth", "type": "date", "required": True},
        {"name": "visit", "label": "Kind of visit", "type": "select", "options": ["new", "follow-up"],
         "required": True},
        {"name": "reason", "label": "Reason for the visit", "type": "textarea", "required": True,
         "show_if": {"field": "visit", "equals": "new"}},
        {"name": "card", "label": "Insurance card", "type": "file", "accept": ["png", "jpeg", "pdf"],
         "required": True},
        {"name": "sig", "label": "Signature", "type": "signature", "required": True},
        {"name": "consent", "label": "Consent", "type": "consent", "required": True,
         "text": "I consent to treatment and to this form being sent to the clinic."},
    ],
}  # fmt: skip


def test_fill_validate_upload_submit_and_read_it_with_gpg(
    tmp_path: Path, sqlite_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm, gpg: GnuPG, browser: Any
) -> None:
    sinks = mx.start({"127.0.0.2": {"cert": ca.issue("mx.pgp.example")}})
    dns.add("pgp.example", "MX", "10 mx.pgp.example.")
    dns.add("mx.pgp.example", "A", "127.0.0.2")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        tmp_path, sqlite_url, outbound_mode="mx", dns_nameservers=[f"{dns.address[0]}:{dns.address[1]}"],
        mx_port=mx.port, tls_ca_file=ca.ca_file, mta_sts_enabled=False, smtp_hostname="out.sealmail.test",
        key_discovery="off", portal_base_url=base,
    )  # fmt: skip
    services = build_services(settings)
    try:
        tenant = make_tenant(services, name="Riverside Clinic")
        fpr = gpg.gen_key("Intake Desk <intake@pgp.example>")
        services.keydir.upload(tenant.id, gpg.export(fpr), "test")
        with serve(create_api(services), sock):
            import httpx

            r = httpx.post(
                f"{base}/v1/forms", json=FORM, headers={"Authorization": f"Bearer {tenant.api_key}"}
            )
            assert r.status_code == 201, r.text
            url = r.json()["url"]
            assert url.startswith(base)
            context = browser.new_context(java_script_enabled=False)
            try:
                fill_in_browser(context.new_page(), url, tmp_path)
            finally:
                context.close()

        async def deliver() -> None:
            transport = build_transport(settings)
            try:
                await build_worker(services, transport).run_until_idle(timeout=60)
            finally:
                await transport.close()

        # A thread of its own: Playwright's sync API keeps an event loop in this one.
        worker = threading.Thread(target=lambda: asyncio.run(deliver()))
        worker.start()
        worker.join(90)
        [received] = sinks["127.0.0.2"].wait_for(1)
    finally:
        services.close()

    outer = email.message_from_bytes(received.data)
    assert outer.get_content_type() == "multipart/encrypted"
    assert ANSWER.encode() not in received.data and b"Pat Doe" not in received.data
    armored = outer.get_payload()[1].get_payload(decode=True)
    inner = email.message_from_bytes(gpg.decrypt(armored).stdout, policy=email.policy.default)
    parts = {p.get_filename(): p for p in inner.iter_attachments()}  # type: ignore[attr-defined]
    doc = json.loads(parts["submission.json"].get_content())
    answers = doc["answers"]
    assert answers["full_name"] == "Pat Doe"
    assert answers["reason"] == ANSWER
    assert answers["birth_date"] == "1984-02-29"
    assert answers["sig"]["typed_name"] == "Pat Doe" and answers["sig"]["ip"] == "127.0.0.1"
    assert answers["consent"]["agreed"] is True
    assert parts["insurance-card.png"].get_content() == PNG
    assert parts["submission.pdf"].get_content().startswith(b"%PDF-")
    body = inner.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert ANSWER in body.get_content()


def fill_in_browser(page: Any, url: str, tmp_path: Path) -> None:
    page.goto(url)
    assert page.title() == "New patient intake · Riverside Clinic"
    # The reason only shows once "new" is chosen (CSS :has, no script).
    expect(page.locator("#f-reason")).to_be_hidden()
    page.select_option("#f-visit", "new")
    expect(page.locator("#f-reason")).to_be_visible()
    page.fill("#f-full_name", "Pat Doe")
    # Submit with required fields missing: the page comes back with the errors listed.
    page.click("button[type=submit]")
    expect(page.locator("#errors")).to_be_visible()
    errors = page.locator("#errors li").all_inner_texts()
    assert any("Date of birth" in e for e in errors) and any("Signature" in e for e in errors)
    assert page.input_value("#f-full_name") == "Pat Doe"
    # A file whose content is not an image is refused whatever its name says.
    fake = tmp_path / "card.png"
    fake.write_bytes(b"MZ\x90\x00 definitely not a PNG")
    page.fill("#f-birth_date", "1984-02-29")
    page.fill("#f-reason", ANSWER)
    page.set_input_files("#f-card", str(fake))
    page.fill("#f-sig", "Pat Doe")
    page.check("#f-consent")
    page.click("button[type=submit]")
    expect(page.locator("#e-card")).to_contain_text("not accepted here")
    real = tmp_path / "insurance-card.png"
    real.write_bytes(PNG)
    page.set_input_files("#f-card", str(real))
    page.fill("#f-reason", ANSWER)
    if not page.is_checked("#f-consent"):
        page.check("#f-consent")
    page.click("button[type=submit]")
    expect(page.locator("#reference")).to_have_text(re.compile(r"^fsub_"))
    assert "/f/receipt/" in page.url
