"""The console in headless Chromium: a first owner enrols TOTP from the one-time link, signs
in with password and code, sees the dashboard and a message's delivery trail — on a desktop
and at 390 px, with no CSP violation and nothing wider than the phone's screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import expect
from tests.conftest import TenantFixture
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import PASSWORD, Console

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
OWNER = "owner@clinic.example"


def watched_page(browser: Any, viewport: dict[str, int], problems: list[str]) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    # A CSP violation or a script error shows up as a console error.
    page.on(
        "console",
        lambda m: problems.append(f"{m.text} {m.location.get('url')}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide"


def sign_in(page: Any, console: Console, secret: str) -> None:
    page.goto(f"{console.url}/console/signin")
    page.get_by_label("Email address").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("6-digit code from your authenticator app").fill(pyotp.TOTP(secret).at(console.clock()))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def enrol(page: Any, console: Console, token: str | None) -> str:
    """Open the one-time link, choose a password, confirm a code: the TOTP secret."""
    page.goto(f"{console.url}/console/welcome/{token}")
    page.get_by_role("heading", name="Set up your account").wait_for()
    secret = str(page.locator("#totp-secret").inner_text()).replace(" ", "")
    assert page.locator("#totp-uri").text_content().startswith("otpauth://totp/")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("6-digit code shown by your app").fill(pyotp.TOTP(secret).at(console.clock()))
    page.get_by_role("button", name="Finish setup").click()
    # count() does not wait for the next page; expect() does.
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    return secret


def test_owner_enrols_signs_in_with_totp_and_reads_a_trail_on_desktop_and_phone(
    console: Console, browser: Any, tenant: TenantFixture
) -> None:
    body = {"from": f"Clinic <noreply@{tenant.domain}>", "to": ["patient@example.net"],
            "subject": "Your results", "text": "Private", "stream": "phi"}  # fmt: skip
    sent = httpx.post(
        f"{console.url}/v1/messages", json=body, headers={"Authorization": f"Bearer {tenant.api_key}"}
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    problems: list[str] = []

    page = watched_page(browser, DESKTOP, problems)
    secret = enrol(page, console, token)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()

    for viewport in (DESKTOP, PHONE):
        console.clock.advance(seconds=30)  # a new TOTP step: each code works once
        page = watched_page(browser, viewport, problems)
        sign_in(page, console, secret)
        expect(page.get_by_role("img", name="Messages per day by stream")).to_be_visible()
        page.locator("#vol-numbers summary").click()  # the chart's numbers, one click away
        expect(page.get_by_role("columnheader", name="phi")).to_be_visible()
        no_sideways_scroll(page)
        page.get_by_role("link", name="Find a message").click()
        page.get_by_label("Recipient address or message id").fill("patient@example.net")
        page.get_by_role("button", name="Search").click()
        trail = page.get_by_role("region", name=f"Message {message_id}")
        trail.wait_for()
        assert "patient@example.net" in trail.inner_text() and "queued" in trail.inner_text()
        assert "Your results" not in page.content()
        no_sideways_scroll(page)
    # The browser's own favicon probe hits the API origin's root, not the console.
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []


def test_a_sender_composes_with_an_attachment_sees_the_outcome_and_finds_it_again(
    console: Console, browser: Any, tenant: TenantFixture, tmp_path: Path
) -> None:
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    problems: list[str] = []
    lab = tmp_path / "lab-results.pdf"
    lab.write_bytes(b"%PDF-1.4 potassium normal")
    secret = ""
    for viewport in (PHONE, DESKTOP):
        page = watched_page(browser, viewport, problems)
        if not secret:
            secret = enrol(page, console, token)
        else:
            console.clock.advance(seconds=30)
            sign_in(page, console, secret)
        page.goto(f"{console.url}/console/compose")
        page.get_by_role("heading", name="Compose a secure message").wait_for()
        assert page.get_by_label("From").input_value() == OWNER
        page.get_by_label("To", exact=True).fill("patient@example.net, kin@example.org")
        page.get_by_label("Subject").fill("Your lab results")
        page.get_by_label("Message", exact=True).fill("Your potassium level is normal.")
        page.get_by_label("Attachments").set_input_files(str(lab))
        page.get_by_label("Send securely").check()
        no_sideways_scroll(page)
        page.get_by_role("button", name="Send").click()
        page.get_by_role("heading", name="Outcome").wait_for()
        outcome = page.locator(".outcomes")
        assert "patient@example.net" in outcome.inner_text() and "kin@example.org" in outcome.inner_text()
        message_id = page.locator("h2 code").inner_text()
        no_sideways_scroll(page)
        page.get_by_role("link", name="Read the message (recorded in the audit log)").click()
        expect(page.locator("#content-subject")).to_have_text("Your lab results")
        assert "lab-results.pdf" in page.content()
        page.get_by_role("link", name="Find a message").click()
        page.get_by_label("Recipient address or message id").fill(message_id)
        page.get_by_role("button", name="Search").click()
        trail = page.get_by_role("region", name=f"Message {message_id}")
        trail.wait_for()
        assert "kin@example.org" in trail.inner_text() and "queued" in trail.inner_text()
        page.get_by_role("link", name="Sent").click()
        expect(page.get_by_role("link").filter(has_text="UTC").first).to_be_visible()
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
