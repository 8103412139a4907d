"""The console's contact pages in headless Chromium: an owner declares an attribute, imports
a CSV and watches the background import's page refresh itself to completion (with its
per-row problems), opens an imported contact whose name carries markup and a bidi override,
grants and then revokes marketing consent, and sees both in the ledger — with no CSP
violation or script error on the way."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.conftest import TenantFixture
from tests.e2e.console.test_console_browser import DESKTOP, OWNER, enrol, watched_page
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import Console

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
HOSTILE = "<b>Pat</b>\u202egnp.exe"
ROWS = 60
# Page loads on a busy machine (the suites run in parallel) can outlast expect()'s 5 s default.
WAIT = 20_000


def test_owner_declares_imports_watches_progress_opens_a_contact_and_revokes_consent(
    console: Console, browser: Any, tenant: TenantFixture, tmp_path: Path
) -> None:
    csv_file = tmp_path / "patients.csv"
    lines = ["email,first_name,age"]
    lines += [
        f"p{i}@example.net,{HOSTILE if i == 7 else f'Name{i}'},{'old' if i % 10 == 3 else 40}"
        for i in range(ROWS)
    ]
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    problems: list[str] = []
    page = watched_page(browser, DESKTOP, problems)
    enrol(page, console, token)

    # 1. Declare the attributes the file uses.
    page.goto(f"{console.url}/console/marketing/attributes")
    for name, kind, cls in (("first_name", "text", "demographic"), ("age", "number", "demographic")):
        page.get_by_label("Name", exact=True).fill(name)
        page.get_by_label("Type").select_option(kind)
        page.get_by_label("Health-data class").select_option(cls)
        page.get_by_role("button", name="Declare").click()
        expect(page.locator("#attributes")).to_contain_text(name, timeout=WAIT)
    # A bad name is refused in the page, not with an error page.
    page.get_by_label("Name", exact=True).evaluate("e => e.removeAttribute('pattern')")
    page.get_by_label("Name", exact=True).fill("Bad-Name")
    page.get_by_role("button", name="Declare").click()
    expect(page.locator("#problems")).to_contain_text("name: use a-z", timeout=WAIT)

    # 2. Import the file and watch the import page refresh itself until it is done.
    page.goto(f"{console.url}/console/marketing/contacts")
    page.get_by_role("link", name="Import a CSV file").click()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Import").click()
    # The import's page, named by its id: nothing of the file in the address.
    expect(page).to_have_url(re.compile(r"/console/marketing/imports/imp_[A-Za-z0-9_-]+$"), timeout=WAIT)
    expect(page.get_by_role("heading", name="Import", exact=True)).to_be_visible(timeout=WAIT)
    expect(page.locator("#import-state")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#import-status")).to_have_text(f"Finished: {ROWS} rows.", timeout=WAIT)
    expect(page.locator("#import-failed")).to_have_text(str(ROWS // 10), timeout=WAIT)
    expect(page.locator("#import-errors tbody tr")).to_have_count(ROWS // 10, timeout=WAIT)
    expect(page.locator("#import-errors tbody tr").first).to_contain_text("attributes.age", timeout=WAIT)
    assert page.locator("#import-progress").get_attribute("value") == str(ROWS)

    # 3. Open the contact with the hostile name: the markup is text, the override is gone.
    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="p7@example.net").click()
    expect(page.get_by_role("heading", name="Contact p7@example.net")).to_be_visible(timeout=WAIT)
    fields = page.locator("#contact-fields")
    expect(fields).to_contain_text("<b>Pat</b>gnp.exe", timeout=WAIT)
    expect(fields.locator("b")).to_have_count(0, timeout=WAIT)

    # 4. Grant marketing by email, then revoke it with evidence; the ledger keeps both.
    row = page.locator("#consent-marketing-email")
    expect(row.locator(".state")).to_have_text("none", timeout=WAIT)
    row.get_by_role("button", name="Grant marketing by email").click()
    expect(page.locator("#consent-marketing-email .state")).to_have_text("granted", timeout=WAIT)
    page.get_by_label("Evidence for revoking marketing by email").fill("phone call 2026-12-04")
    page.get_by_role("button", name="Revoke marketing by email").click()
    expect(page.locator("#consent-marketing-email .state")).to_have_text("revoked", timeout=WAIT)
    ledger = page.locator("#ledger tbody tr")
    expect(ledger).to_have_count(2, timeout=WAIT)
    expect(ledger.nth(0)).to_contain_text("grant", timeout=WAIT)
    expect(ledger.nth(1)).to_contain_text("revoke", timeout=WAIT)
    expect(ledger.nth(1)).to_contain_text("phone call 2026-12-04", timeout=WAIT)
    # The browser's own favicon probe hits the API origin's root, not the console; the refused
    # declaration is a 422 page on purpose, which Chromium reports as a failed load.
    refused = "status of 422 (Unprocessable Entity)"
    assert [p for p in problems if not p.endswith("/favicon.ico") and refused not in p] == []
