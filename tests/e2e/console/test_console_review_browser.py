"""The activity review in headless Chromium: a compliance officer enrols, opens the month's
queue, signs it off with a note — on a phone-sized screen, with no CSP violation and nothing
wider than the screen; the sign-off is then shown in place of the form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.conftest import TenantFixture
from tests.e2e.console.test_console_browser import PHONE, enrol, no_sideways_scroll, watched_page
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import Console

from sealmail import audit
from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.evidence.working_hours import WorkingHours
from sealmail.users.roles import Role

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.hipaa("164.308(a)(1)(ii)(D)"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_officer_signs_off_the_month_in_a_browser(
    console: Console, browser: Any, services: Services, tenant: TenantFixture
) -> None:
    # Every hour a working hour: the officer's own sign-in is never queued, whenever this runs.
    every_hour = WorkingHours("UTC", 0, 24, (0, 1, 2, 3, 4, 5, 6))
    services.evidence.activity_review.set_working_hours(tenant.id, every_hour, "test")
    with services.engine.begin() as conn:
        audit.append(conn, action=AuditAction.USER_SIGNIN_FAILED, actor="user:mallory", tenant_id=tenant.id)
        audit.append(conn, action=AuditAction.EMERGENCY_ACCESS_USED, actor="user:ann", tenant_id=tenant.id)
    _, token = console.users.invite(
        tenant.id, "officer@clinic.example", "Officer", Role.COMPLIANCE, actor="test"
    )
    problems: list[str] = []
    page = watched_page(browser, PHONE, problems)
    enrol(page, console, token)

    page.goto(f"{console.url}/console/evidence/review")
    page.get_by_role("heading", name="Activity review").wait_for()
    items = page.locator("#review-items tbody")
    assert "user:mallory" in items.inner_text() and "Break-glass grants and uses" in items.inner_text()
    no_sideways_scroll(page)
    page.get_by_label("What was reviewed and what was found").fill(
        "Mallory's failures were a typo; ED break-glass ok."
    )
    page.get_by_role("button", name="Sign off").click()
    signed = page.locator("#sign-off")
    signed.wait_for()
    assert "ED break-glass ok." in signed.inner_text() and "2 items" in signed.inner_text()
    assert page.get_by_role("button", name="Sign off").count() == 0
    no_sideways_scroll(page)
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
    month = datetime.now(UTC).strftime("%Y-%m")
    sign_off = services.evidence.activity_review.queue(tenant.id, month).sign_off
    assert sign_off is not None and sign_off.signed_by.startswith("user:") and sign_off.item_count == 2
