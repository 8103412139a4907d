"""A real delivery's trail in headless Chromium: the worker delivers over verified STARTTLS to
a loopback MX; the owner finds the message, opens its trail (method and reason, TLS version,
cipher, the certificate's SHA-256, PKIX, the 250 reply) on a phone, shortens the portal
expiry and recalls it — each audited with the owner."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect
from tests.e2e.console.test_console_browser import PHONE, enrol, no_sideways_scroll, watched_page
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import console_server
from tests.integration.delivery.conftest import MxFarm, ca, dns, mx
from tests.integration.evidence.harness import deliver_one
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

from sealmail.store.tables import audit_log

__all__ = ["ca", "dns", "mx"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_owner_reads_a_verified_tls_trail_on_a_phone_then_sets_expiry_and_recalls(
    browser: Any, tmp_path: Path, sqlite_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    # Playwright's sync API keeps an event loop on this thread; the worker runs on its own.
    with ThreadPoolExecutor(1) as pool:
        d = pool.submit(deliver_one, tmp_path, sqlite_url, dns, ca, mx).result(timeout=120)
    problems: list[str] = []
    try:
        with console_server(d.services) as console:
            token = console.users.owner_link(d.tenant.id, "owner@clinic.example", actor="test")
            page = watched_page(browser, PHONE, problems)
            enrol(page, console, token)
            page.goto(f"{console.url}/console/messages")
            page.get_by_label("Recipient address or message id").fill("tia@tls.example")
            page.get_by_role("button", name="Search").click()
            page.get_by_role("link", name="Delivery trail, recall and expiry").click()
            page.get_by_role("heading", name="Delivery trail").wait_for()
            rcpt = page.locator('.rcpt[data-recipient="tia@tls.example"]')
            assert rcpt.locator(".t-method").inner_text().startswith("tls — tls: verified")
            assert rcpt.locator(".t-tls").inner_text() in ("TLSv1.2", "TLSv1.3")
            assert rcpt.locator(".t-cipher").inner_text()
            assert rcpt.locator(".t-cert").inner_text() == hashlib.sha256(d.cert.der).hexdigest()
            assert rcpt.locator(".t-verified").inner_text() == "pkix"
            assert rcpt.locator(".t-reply").inner_text().startswith("250")
            assert "Your results" not in page.content()
            no_sideways_scroll(page)

            soon = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
            page.get_by_label("Portal access ends").fill(soon.strftime("%Y-%m-%dT%H:%M"))
            page.get_by_role("button", name="Set expiry").click()
            page.get_by_role("heading", name="Delivery trail").wait_for()
            # The trail heading is on the page before and after the post: wait for the new value.
            expect(page.locator("#portal-expiry")).to_have_text(soon.strftime("%Y-%m-%d %H:%M UTC"))
            page.get_by_role("button", name="Recall this message").click()
            page.locator("#portal-state", has_text="recalled").wait_for()
            assert page.get_by_role("button", name="Recall this message").count() == 0
            no_sideways_scroll(page)
        with d.services.engine.connect() as conn:
            actions = conn.execute(
                sa.select(audit_log.c.action, audit_log.c.actor).where(audit_log.c.target == d.message_id)
            ).all()
        by = {str(action): str(actor) for action, actor in actions}
        assert (
            by["portal:recalled"].startswith("user:")
            and by["portal:settings_changed"] == by["portal:recalled"]
        )
    finally:
        d.services.close()
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
