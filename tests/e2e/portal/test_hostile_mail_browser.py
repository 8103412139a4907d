"""In Chromium: a hostile message in the inbox never hides the reader's other messages (issue 11.2)."""

from __future__ import annotations

from typing import Any

from tests.e2e.portal import test_portal_browser as browser_suite
from tests.e2e.portal.test_portal_browser import DESKTOP, request_and_enter_code
from tests.integration.portal.portal_harness import PATIENT, Stack
from tests.integration.portal.test_hostile_mail import send_raw
from tests.support.hostile_mail import deep_html, unknown_charset

# The browser suite's marks: e2e, and skipped without Debian's chromium.
pytestmark = browser_suite.pytestmark


def test_inbox_lists_good_mail_next_to_hostile_mail_and_offers_the_undisplayable_part(
    stack: Stack, browser: Any
) -> None:
    good = stack.send()
    send_raw(stack, unknown_charset(PATIENT))
    send_raw(stack, deep_html(PATIENT))
    link = stack.notice_link(good)
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.goto(link)
    request_and_enter_code(stack, page)
    page.wait_for_url(lambda url: "/signin" not in url)
    page.goto(f"{stack.base_url}/p/inbox?all=1")
    page.get_by_role("heading", name="Your secure messages").wait_for()
    for subject in ("Your lab results from March", "unknown-charset", "deep-html"):
        assert page.get_by_role("link", name=subject).count() == 1, subject
    page.get_by_role("link", name="deep-html").click()
    page.get_by_text("This part could not be displayed.").wait_for()
    with page.expect_download() as got:
        page.get_by_role("link", name="Download message.html").click()
    assert got.value.suggested_filename == "message.html"
    context.close()
