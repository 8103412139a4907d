"""In Chromium: a right-to-left override cannot disguise a file, a display name cannot hide the sender.

The patient's message carries ``invoice<RLO>fdp.exe`` (which Chromium would draw as
``invoiceexe.pdf``) next to an Arabic file name, and its From is
``"ceo@hospital.test" <dr.smith@clinic.example>``.  The page must draw the names in their
own isolated boxes, without the override, and show the real address with a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.e2e.portal.conftest import ARGS, CHROMIUM
from tests.e2e.portal.test_portal_browser import DESKTOP, request_and_enter_code
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import Stack, attachment, portal_stack
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
RLO = "\u202e"
ARABIC = "تقرير.pdf"


@pytest.fixture
def stack(tmp_path: Path, sqlite_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, sqlite_url, dns, ca, mx) as s:
        yield s


@pytest.fixture
def page(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser.new_context(viewport=DESKTOP).new_page()
        finally:
            browser.close()


def test_names_are_isolated_and_the_real_sender_is_shown(stack: Stack, page: Any) -> None:
    # The API refuses a bidi control in a file name; mail from elsewhere can carry one.
    mid = stack.send_renamed(
        {b'filename="PLACEHOLDER.exe"': b"filename*=UTF-8''invoice%E2%80%AEfdp.exe"},
        **{"from": '"ceo@hospital.test" <dr.smith@clinic.example>'},
        attachments=[
            attachment("PLACEHOLDER.exe", b"MZ", "application/octet-stream"),
            attachment(ARABIC, b"%PDF-1.4", "application/pdf"),
        ],
    )
    page.goto(stack.notice_link(mid))
    request_and_enter_code(stack, page)
    page.get_by_role("heading", name="Your lab results from March").wait_for()
    assert RLO not in page.content()

    files = page.locator("ul.files a bdi")
    assert files.all_inner_texts() == ["invoicefdp.exe", ARABIC]
    styles = files.evaluate_all("els => els.map(e => getComputedStyle(e).unicodeBidi)")
    assert styles == ["isolate", "isolate"]
    # Drawn left to right in logical order: "exe" really is at the end of the name.
    first, last = page.evaluate(
        """() => {
            const node = document.querySelector('ul.files a bdi').firstChild;
            const at = i => { const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
                              return r.getBoundingClientRect().left; };
            return [at(node.length - 3), at(7)];
        }"""
    )
    assert first > last, "the extension is not drawn at the end of the name"

    sender = page.locator("dd .sender-address")
    assert sender.inner_text() == "dr.smith@clinic.example"
    expect(sender).to_be_visible()
    warning = "The name contains an e-mail address that is not the sender's address."
    expect(page.get_by_text(warning)).to_be_visible()
