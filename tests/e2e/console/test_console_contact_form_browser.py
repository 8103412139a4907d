"""The console's form to add a contact, in headless Chromium: a practice owner adds one by
hand, sees a wrong phone number refused in the form with what was typed kept, corrects it,
lands on the new contact's page (a name with markup shown as text), then edits it — with no
CSP violation or script error on the way."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.conftest import TenantFixture
from tests.e2e.console.test_console_browser import DESKTOP, OWNER, enrol, watched_page
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import Console

from sealmail.app import Services

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
WAIT = 20_000  # page loads on a busy machine can outlast expect()'s 5 s default


def test_owner_adds_a_contact_by_hand_corrects_a_problem_and_edits_it(
    console: Console, browser: Any, tenant: TenantFixture, services: Services
) -> None:
    for name, kind, cls, choices in (
        ("first_name", "text", "demographic", None),
        ("plan", "choice", "none", ["gold", "silver"]),
    ):
        services.marketing.attributes.define(
            tenant.id, name=name, type_=kind, phi_class=cls, choices=choices, actor="test"
        )
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    problems: list[str] = []
    page = watched_page(browser, DESKTOP, problems)
    enrol(page, console, token)

    page.goto(f"{console.url}/console/marketing/contacts")
    page.get_by_role("link", name="Add contact").click()
    expect(page.get_by_role("heading", name="Add a contact")).to_be_visible(timeout=WAIT)
    page.get_by_label("Email").fill("pat.doe@example.net")
    page.get_by_label("Phone").fill("12")
    page.get_by_label("first_name").fill("<b>Pat</b>")
    page.get_by_label("plan").select_option("gold")
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator("#problems")).to_contain_text("phone: must be a valid number", timeout=WAIT)
    expect(page.get_by_label("Email")).to_have_value("pat.doe@example.net", timeout=WAIT)
    expect(page.get_by_label("first_name")).to_have_value("<b>Pat</b>", timeout=WAIT)

    page.get_by_label("Phone").fill("+1 415 555 0123")
    page.get_by_role("button", name="Add contact").click()
    expect(page).to_have_url(
        re.compile(r"/console/marketing/contacts/ctc_[A-Za-z0-9_-]+\?saved=added$"), timeout=WAIT
    )
    expect(page.locator("#saved")).to_have_text("Contact added.", timeout=WAIT)
    fields = page.locator("#contact-fields")
    expect(fields).to_contain_text("+14155550123", timeout=WAIT)
    expect(fields).to_contain_text("<b>Pat</b>", timeout=WAIT)
    expect(fields.locator("b")).to_have_count(0, timeout=WAIT)

    page.get_by_role("link", name="Edit contact").click()
    expect(page.get_by_label("first_name")).to_have_value("<b>Pat</b>", timeout=WAIT)
    page.get_by_label("first_name").fill("Patricia")
    page.get_by_label("plan").select_option("silver")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#saved")).to_have_text("Changes saved.", timeout=WAIT)
    expect(fields).to_contain_text("Patricia", timeout=WAIT)
    expect(fields).to_contain_text("silver", timeout=WAIT)
    # The refused form is a 422 page on purpose, which Chromium reports as a failed load.
    refused = "status of 422 (Unprocessable Entity)"
    assert [p for p in problems if not p.endswith("/favicon.ico") and refused not in p] == []
