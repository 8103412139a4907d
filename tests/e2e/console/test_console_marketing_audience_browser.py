"""The rest of the marketing console in headless Chromium (issue 16's screens the other
browser tests do not drive): an owner records a HIPAA authorization on a contact, makes a
list and fills it by email, saves a journey from JSON and enrols a contact in it, reads its
per-step figures, and sets a frequency cap — with no CSP violation, without script."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import expect
from tests.conftest import TenantFixture
from tests.e2e.console.test_console_browser import no_sideways_scroll
from tests.e2e.console.test_console_marketing_browser import pytestmark, seeded_owner
from tests.integration.console.console_harness import Console
from tests.support.client_tls import default_context

__all__ = ["pytestmark"]


def test_owner_authorizes_a_contact_fills_a_list_runs_a_journey_and_sets_a_cap(
    console: Console, browser: Any, tenant: TenantFixture
) -> None:
    problems: list[str] = []
    page = seeded_owner(console, browser, tenant, problems)
    # A HIPAA marketing authorization with every 164.508(c) element, then the state it leaves.
    page.goto(f"{console.url}/console/marketing/contacts")
    page.get_by_role("link", name="p0@example.net").click()
    today = datetime.now(UTC).date()
    page.get_by_label("Information that may be used or disclosed").fill("name and visit dates")
    page.get_by_label("Who may use or disclose it").fill("Clinic")
    page.get_by_label("To whom it may be disclosed").fill("Clinic marketing")
    page.get_by_label("Purpose of the use or disclosure").fill("news of the diabetes program")
    page.get_by_label("Signed by").fill("P. Zero")
    page.get_by_label("Signed on").fill(today.isoformat())
    page.get_by_label("Expires on").fill((today + timedelta(days=365)).isoformat())
    for box in page.locator('input[name="statements"]').all():
        box.check()
    page.get_by_label("or its SHA-256 (hex)").fill("ab" * 32)
    page.get_by_role("button", name="Record authorization").click()
    expect(page.locator("#consent-marketing-email .state")).to_have_text("authorized")
    expect(page.locator("#ledger")).to_contain_text("authorize")
    contact_url = page.url
    # A list, filled by email.
    page.goto(f"{console.url}/console/marketing/lists")
    page.get_by_label("Name").fill("Diabetes program")
    page.get_by_role("button", name="Create list").click()
    page.get_by_label("Add contacts by email").fill("p0@example.net\np1@example.net")
    page.get_by_role("button", name="Add to list").click()
    expect(page.locator("#member-count")).to_have_text("2 members.")
    # A journey from JSON, woken by an API event, and its per-step figures.
    definition = {
        "trigger": {"type": "api_event", "event": "booked"},
        "steps": [{"wait": {"hours": 2}}, {"exit": {}}],
    }
    page.goto(f"{console.url}/console/marketing/journeys")
    page.get_by_label("Journey name").fill("After booking")
    page.get_by_label("Definition").fill(json.dumps(definition))
    page.get_by_role("button", name="Save journey").click()
    expect(page.locator("#journey-state")).to_contain_text("Enrolling new contacts. 0 enrolled.")
    steps_url = page.url
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    with httpx.Client(base_url=console.url, headers=h, verify=default_context(), timeout=30) as api:
        event = {"event": "booked", "email": "p1@example.net"}
        assert api.post("/v1/marketing/journeys/events", json=event).json()["enrolled"] == 1
    page.reload()
    expect(page.locator("#journey-state")).to_contain_text("1 enrolled.")
    page.goto(steps_url.removesuffix("/steps"))
    expect(page.get_by_role("img", name="Enrollments at each step now", exact=False)).to_be_visible()
    # A frequency cap for marketing.
    page.goto(f"{console.url}/console/marketing/caps")
    page.get_by_label("Max sends for marketing").fill("2")
    page.get_by_label("Window hours for marketing").fill("168")
    page.get_by_role("button", name="Save the marketing cap").click()
    expect(page.get_by_label("Max sends for marketing")).to_have_value("2")
    for url in (contact_url, steps_url):
        page.goto(url)
        no_sideways_scroll(page)
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
