"""In Chromium: a hostile message in the inbox never hides the reader's other messages (issue 11.2)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from tests.e2e.portal.test_portal_browser import DESKTOP, request_and_enter_code
from tests.integration.portal.portal_harness import PATIENT, Stack
from tests.support.hostile_mail import SENDER, deep_html, unknown_charset


def _send_raw(stack: Stack, raw: bytes) -> None:
    with httpx.Client(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.tenant.api_key}"}, timeout=60
    ) as api:
        resp = api.post(
            "/v1/messages/raw",
            json={
                "envelope": {"mail_from": SENDER, "rcpt_to": [PATIENT]},
                "message": base64.b64encode(raw).decode(),
                "stream": "phi",
            },
        )
    assert resp.status_code == 202, resp.text


def test_inbox_lists_good_mail_next_to_hostile_mail_and_offers_the_undisplayable_part(
    stack: Stack, browser: Any
) -> None:
    good = stack.send()
    _send_raw(stack, unknown_charset(PATIENT))
    _send_raw(stack, deep_html(PATIENT))
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
