"""The unsubscribe preference page in headless Chromium: the List-Unsubscribe link of a
delivered broadcast opens the page, the buttons unsubscribe and subscribe again under the
page's strict CSP (no script, no console errors), and no cookie is ever set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from tests.integration.engagement.conftest import Stack, header
from tests.support.waiting import wait_until

from sealmail.store import db
from sealmail.suppressions import service as suppressions

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make system-deps)"
    ),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip


def _suppressed(stack: Stack) -> bool:
    with db.reader(stack.services.engine) as conn:
        return bool(suppressions.suppressed(conn, stack.tenant.id, "broadcast", ["pat@example.net"]))


def test_preference_page_buttons_unsubscribe_and_resubscribe_in_a_browser(stack: Stack) -> None:
    from playwright.sync_api import sync_playwright

    mid = stack.send(["pat@example.net"])
    [m] = stack.deliver(mid, 1)
    value = header(m, "List-Unsubscribe")
    assert value is not None
    link = re.fullmatch(r"<(.+)>", value)
    assert link is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(link.group(1))
            assert page.locator("#state").inner_text() == "You are subscribed."
            assert page.title().startswith("Email preferences")
            page.get_by_role("button", name="Unsubscribe").click()
            expect(page.locator("#state")).to_contain_text("You are unsubscribed")
            wait_until(lambda: _suppressed(stack), 5, "the page's button did not unsubscribe")
            page.get_by_role("button", name="Subscribe again").click()
            expect(page.locator("#state")).to_have_text("You are subscribed.")
            assert not _suppressed(stack)
            assert context.cookies() == []
            # The inline style is allowed by its hash: a CSP violation would be logged here.
            assert problems == []
        finally:
            browser.close()
