"""The marketing console in headless Chromium: an owner builds a segment condition by
condition and sees the live count and why each contact matched, saves it, creates a
campaign with two A/B variants on it, runs the pre-send checks, starts it and reads its
figures (chart and table) — with no CSP violation, without script."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from tests.conftest import TenantFixture
from tests.e2e.console.test_console_browser import (
    DESKTOP,
    OWNER,
    PHONE,
    enrol,
    no_sideways_scroll,
    watched_page,
)
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import Console
from tests.integration.marketing.conftest import ATTRIBUTES
from tests.support.client_tls import default_context

from sealmail.app import Services

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def seed(console: Console, tenant: TenantFixture) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    with httpx.Client(base_url=console.url, headers=h, verify=default_context(), timeout=30) as api:
        for a in ATTRIBUTES:
            assert api.post("/v1/marketing/attributes", json=a).status_code == 201
        for i, (city, age) in enumerate([("Austin", 40), ("Austin", 25), ("Boston", 50)]):
            body = {"email": f"p{i}@example.net", "attributes": {"city": city, "age": age}}
            assert api.post("/v1/marketing/contacts", json=body).status_code == 201
        tpl = {"name": "reminder", "subject": "Flu shots", "text": "Book your flu shot."}
        assert api.post("/v1/templates", json=tpl).status_code == 201
        again = {"subject": "Flu shots now", "text": "Book your flu shot today."}
        assert api.put("/v1/templates/reminder", json=again).status_code in (200, 201)


def seeded_owner(console: Console, browser: Any, tenant: TenantFixture, problems: list[str]) -> Any:
    """A signed-in owner's page over the seeded tenant; console errors go to ``problems``."""
    seed(console, tenant)
    page = watched_page(browser, DESKTOP, problems)
    enrol(page, console, console.users.owner_link(tenant.id, OWNER, actor="test"))
    return page


def test_owner_builds_a_segment_then_creates_checks_starts_and_reads_a_campaign(
    console: Console, browser: Any, tenant: TenantFixture, services: Services
) -> None:
    problems: list[str] = []
    page = seeded_owner(console, browser, tenant, problems)

    page.goto(f"{console.url}/console/marketing/segments")
    page.get_by_role("heading", name="Build a segment").wait_for()
    page.get_by_label("Segment name").fill("Austin adults")
    page.get_by_label("Kind of condition").select_option("attr")
    page.get_by_label("Attribute", exact=True).select_option("city")
    page.get_by_label("Operator (by the attribute's type)").select_option("eq")
    page.get_by_label("Value", exact=True).fill("Austin")
    page.get_by_role("button", name="Add condition").click()
    expect(page.locator("#live-count")).to_contain_text("2 contacts match now")
    expect(page.locator("#sample")).to_contain_text("attr:city:eq")
    expect(page.locator("#phi-classes")).to_contain_text("demographic")
    # A second condition on a number attribute narrows it: an all-group of both.
    page.get_by_label("Attribute", exact=True).select_option("age")
    page.get_by_label("Operator (by the attribute's type)").select_option("gte")
    page.get_by_label("Value", exact=True).fill("30")
    page.get_by_role("button", name="Add condition").click()
    expect(page.locator("#live-count")).to_contain_text("1 contacts match now")
    expect(page.locator("#sample")).to_contain_text("p0@example.net")
    expect(page.locator("#seg-rule")).to_have_value(
        '{\n  "all": [\n    {\n      "attr": "city",\n      "op": "eq",\n      "value": "Austin"\n    },\n'
        '    {\n      "attr": "age",\n      "op": "gte",\n      "value": "30"\n    }\n  ]\n}'
    )
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("#saved")).to_contain_text("Austin adults")
    expect(page.locator("#segments")).to_contain_text("Austin adults")
    no_sideways_scroll(page)

    page.get_by_role("navigation", name="Marketing").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_role("heading", name="New campaign").wait_for()
    page.get_by_label("Name", exact=True).fill("Flu shots")
    page.get_by_label("Purpose").select_option("treatment")
    page.get_by_label("Segment (its newest version is pinned)").select_option(label="Austin adults v1")
    page.get_by_label("From").fill("care@clinic.example")
    page.get_by_label("Variant 1 template and version").select_option("reminder@2")
    page.get_by_label("Variant 1 weight").fill("3")
    page.get_by_label("Variant 2 template and version").select_option("reminder@1")
    page.get_by_role("button", name="Create draft").click()

    page.get_by_role("heading", name="Campaign Flu shots").wait_for()
    campaign_url = page.url
    expect(page.locator("#campaign-status")).to_have_text("draft")
    page.get_by_role("button", name="Run the checks again").click()
    expect(page.locator("#checks-passed")).to_be_visible()
    expect(page.locator("#campaign-facts")).to_contain_text("version 2, weight 3")
    page.get_by_role("button", name="Start the campaign").click()
    expect(page.locator("#campaign-status")).to_have_text("starting")

    services.marketing.runs.expand_due("test-expander")  # the worker's audience expansion
    page.reload()
    expect(page.locator("#campaign-status")).to_have_text("sending")
    expect(
        page.get_by_role("img", name="Sent, delivered, human opens and clicks", exact=False)
    ).to_be_visible()
    expect(page.locator("#stats tbody tr")).to_have_count(1)  # one contact: one variant picked
    page.get_by_role("link", name="who, and why").click()
    expect(page.locator("#audience")).to_contain_text("attr:city:eq, attr:age:gte")
    no_sideways_scroll(page)
    # The same screens on a phone: nothing wider than the screen.
    page.set_viewport_size(PHONE)
    screens = ("segments", "caps", "journeys", "campaigns/new")
    for url in (campaign_url, *(f"{console.url}/console/marketing/{s}" for s in screens)):
        page.goto(url)
        expect(page.get_by_role("navigation", name="Marketing")).to_be_visible()
        no_sideways_scroll(page)
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
