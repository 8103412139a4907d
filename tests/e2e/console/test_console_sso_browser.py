"""Single sign-on in headless Chromium against the loopback OP (OIDC code flow with PKCE over
TLS): a person signs in through their organization and lands on the dashboard; when the OP
reports no multi-factor sign-in and the policy requires one, the console asks for the
person's own code before letting them in; someone with no factor of their own is refused.
No CSP violation on the way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyotp
import pytest
from tests.conftest import TenantFixture, make_settings
from tests.e2e.console.test_console_browser import DESKTOP, PHONE, no_sideways_scroll
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console import test_console_sso as sso_suite
from tests.integration.console.console_harness import Console, enrol, person
from tests.integration.console.test_console_sso import configure
from tests.support.ca import TestCA
from tests.support.oidc_provider import Provider

from sealmail.config import Settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
NURSE = "nurse@clinic.example"
# The HTTP suite's test CA and loopback OP, re-exported (assignments, so pytest finds them here).
ca = sso_suite.ca
op = sso_suite.op


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, ca: TestCA) -> Settings:
    return make_settings(tmp_path, sqlite_url, tls_ca_file=ca.ca_file)


def browser_page(browser: Any, viewport: dict[str, int], problems: list[str]) -> Any:
    # The OP's certificate comes from the test CA, which Chromium does not know.
    page = browser.new_context(viewport=viewport, ignore_https_errors=True).new_page()
    page.on(
        "console",
        lambda m: problems.append(f"{m.text} {m.location.get('url')}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def start_sso(page: Any, console: Console, email: str) -> None:
    page.goto(f"{console.url}/console/signin")
    page.get_by_label("Work email for single sign-on").fill(email)
    page.get_by_role("button", name="Go to your organization's sign-in").click()


def test_a_person_signs_in_through_the_op_and_is_asked_for_mfa_when_the_op_did_not_do_it(
    console: Console, browser: Any, op: Provider, tenant: TenantFixture
) -> None:
    owner_link = console.users.owner_link(tenant.id, "owner@clinic.example", actor="test")
    owner = enrol(console, owner_link or "", "owner@clinic.example")
    assert configure(owner, op).status_code == 303
    nurse = person(console, tenant.id, NURSE, "sender")
    op.person = {"sub": "entra|42", "email": NURSE, "email_verified": True, "name": "Nurse"}
    problems: list[str] = []

    # 1. The OP reports a multi-factor sign-in: straight to the dashboard.
    page = browser_page(browser, DESKTOP, problems)
    start_sso(page, console, NURSE)
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.url == f"{console.url}/console/"
    assert op.token_requests and "code_verifier" in op.token_requests[-1]
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()

    # 2. A password alone at the OP: the console asks for the nurse's own code first.
    op.forge = {"amr": ["pwd"]}
    phone = browser_page(browser, PHONE, problems)
    start_sso(phone, console, NURSE)
    code = phone.get_by_label("6-digit code from your authenticator app")
    code.wait_for()
    assert phone.url == f"{console.url}/console/signin/code"
    no_sideways_scroll(phone)
    phone.goto(f"{console.url}/console/")  # not signed in until the code is given
    phone.get_by_role("heading", name="Sign in").wait_for()
    phone.goto(f"{console.url}/console/signin/code")
    phone.get_by_label("6-digit code from your authenticator app").fill(
        pyotp.TOTP(nurse.secret).at(console.clock())
    )
    phone.get_by_role("button", name="Sign in").click()
    phone.get_by_role("heading", name="Dashboard").wait_for()
    no_sideways_scroll(phone)

    # 3. Someone invited but with no factor of their own here cannot make up for the OP.
    console.users.invite(tenant.id, "temp@clinic.example", "", "sender", actor="test")
    op.person = {"sub": "entra|77", "email": "temp@clinic.example", "email_verified": True}
    other = browser_page(browser, DESKTOP, problems)
    start_sso(other, console, "temp@clinic.example")
    other.get_by_role("alert").wait_for()
    assert "Single sign-on did not work" in other.get_by_role("alert").inner_text()
    assert other.url.endswith("/console/signin?error=sso")
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
