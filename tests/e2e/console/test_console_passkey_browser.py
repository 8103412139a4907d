"""Passkeys in headless Chromium with its virtual authenticator (CDP ``WebAuthn``): an owner
adds a passkey from the console, signs out, and signs back in with the passkey instead of a
code — through the console's one static script, with no CSP violation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from tests.conftest import TenantFixture
from tests.e2e.console.test_console_browser import DESKTOP, OWNER, watched_page
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import PASSWORD, Console

from sealmail.users.passkeys import RelyingParty

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_owner_adds_a_passkey_and_signs_in_with_it(
    console: Console, browser: Any, tenant: TenantFixture
) -> None:
    # An RP ID is a host name, never an IP address: the browser reaches the server as localhost.
    origin = f"http://localhost:{urlsplit(console.url).port}"
    console.users.rp = RelyingParty.for_url(origin)
    assert console.users.rp is not None
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    problems: list[str] = []
    page = watched_page(browser, DESKTOP, problems)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]  # fmt: skip

    page.goto(f"{origin}/console/welcome/{token}")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("6-digit code shown by your app").fill(pyotp.TOTP(secret).at(console.clock()))
    page.get_by_role("button", name="Finish setup").click()
    page.locator("#recovery-codes").wait_for()

    page.goto(f"{origin}/console/passkeys")
    page.get_by_label("Name").fill("Virtual key")
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_text("Passkey added.").wait_for()
    assert page.get_by_role("cell", name="Virtual key", exact=True).count() == 1
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(stored) == 1

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email address").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Use a passkey instead").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    used = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert used[0]["signCount"] > stored[0]["signCount"]  # the assertion advanced the counter
    page.goto(f"{origin}/console/passkeys")
    assert "never" not in page.get_by_role("row", name="Virtual key").inner_text()
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
