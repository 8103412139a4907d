"""A large file from compose to the patient, in headless Chromium: the sender picks a file in
the console (the page's script streams it up), sends the message, the worker delivers the
portal notice to the patient's loopback MX, and the patient signs in to the portal, follows
the message's file link and downloads the file intact; the sender's trail counts the open."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.console.test_console_browser import DESKTOP, enrol, watched_page
from tests.e2e.portal.conftest import CHROMIUM, ca, dns, mx
from tests.e2e.portal.test_portal_browser import request_and_enter_code
from tests.integration.console.console_harness import Clock
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import PATIENT, Stack, portal_stack
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

from sealmail.app import build_console, build_users
from sealmail.users.service import Users

__all__ = ["ca", "dns", "mx"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture
def stack(tmp_path: Path, sqlite_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, sqlite_url, dns, ca, mx) as s:
        yield s


def test_a_large_file_from_compose_reaches_the_patient_through_the_portal(
    stack: Stack, browser: Any, tmp_path: Path
) -> None:
    clock = Clock()
    users: Users = build_users(stack.services, clock=clock)
    # The console on the stack's own server, as the API role mounts it.
    stack.app.mount("/console", build_console(stack.services, users))
    scan = tmp_path / "MRI scan.pdf"
    data = b"%PDF-1.4\n" + os.urandom(3 * 1024 * 1024) + b"\n%%EOF\n"
    scan.write_bytes(data)
    problems: list[str] = []

    token = users.owner_link(stack.tenant.id, "owner@clinic.example", actor="test")
    page = watched_page(browser, DESKTOP, problems)
    enrol(page, _Console(stack.base_url, clock), token)
    page.goto(f"{stack.base_url}/console/compose")
    page.get_by_label("To", exact=True).fill(PATIENT)
    page.get_by_label("Subject").fill("Your MRI")
    page.get_by_label("Message", exact=True).fill("The scan is attached as a secure link.")
    page.get_by_label("Large files (sent as secure download links)").set_input_files(str(scan))
    page.get_by_text("Uploaded. Recipients download them from the secure portal.").wait_for(timeout=30_000)
    assert "MRI scan.pdf" in page.locator("#c-large-list").inner_text()
    page.get_by_role("button", name="Send").click()
    page.get_by_role("heading", name="Outcome").wait_for()
    mid = page.locator("h2 code").inner_text()
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []

    link = stack.notice_link(mid)
    patient = browser.new_context(viewport=DESKTOP, accept_downloads=True).new_page()
    patient.goto(link)
    request_and_enter_code(stack, patient)
    patient.get_by_role("heading", name="Your MRI").wait_for()
    text = patient.locator("pre.text").inner_text()  # a plain-text message
    assert "Files shared with you securely" in text and "MRI scan" not in text
    found = re.search(r"(http://127\.0\.0\.1:\d+/p/files/fil_[0-9A-Za-z]+)", text)
    assert found, "the message carries no file link"
    patient.goto(found.group(1))
    with patient.expect_download() as got:
        patient.get_by_role("link", name="MRI scan.pdf").click()
    assert got.value.suggested_filename == "MRI scan.pdf"
    assert Path(got.value.path()).read_bytes() == data

    # Back in the console, the sender's trail shows the portal route and the patient's open.
    page.goto(f"{stack.base_url}/console/sent/{mid}")
    rcpt = page.locator(f'.trail-detail .rcpt[data-recipient="{PATIENT}"]')
    assert rcpt.locator(".t-method").text_content().startswith("portal")
    assert rcpt.locator(".t-opens").text_content() == "1"
    with stack.api() as api:
        [detail] = api.get(f"/v1/messages/{mid}").json()["recipients"]
    assert detail["method"] == "portal" and detail["portal_opens"] == 1


class _Console:
    """What ``enrol`` reads of a console: its URL and the TOTP clock."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
