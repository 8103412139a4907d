"""The forms console in headless Chromium: an owner builds a form field by field (add, type,
choices, required, reorder, remove, conditional show), previews it — the conditional field
appears only once its condition is answered — creates it, publishes a second version, and
sees a submission made on the hosted page listed; on a phone-sized screen, through the
console's own static script, with no CSP violation."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from tests.conftest import TenantFixture
from tests.e2e.console.test_console_browser import OWNER, PHONE, enrol, no_sideways_scroll, watched_page
from tests.e2e.portal.conftest import CHROMIUM
from tests.integration.console.console_harness import Console
from tests.support.client_tls import default_context

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
TOKEN = re.compile(r'name="_token" value="([^"]+)"')


def definition(page: Any) -> dict[str, Any]:
    return dict(json.loads(page.locator("#definition").input_value()))


def test_owner_builds_previews_publishes_a_form_and_sees_a_submission(
    console: Console, browser: Any, tenant: TenantFixture
) -> None:
    problems: list[str] = []
    page = watched_page(browser, PHONE, problems)
    enrol(page, console, console.users.owner_link(tenant.id, OWNER, actor="test"))
    page.goto(f"{console.url}/console/forms/new")
    page.get_by_role("heading", name="New form").wait_for()
    editor = page.locator("#field-editor")
    editor.locator("fieldset").first.wait_for()
    assert editor.locator("fieldset").count() == 1  # the starter's one field

    # A yes/no question, then the detail shown only on "yes", then a spare field to move and drop.
    for _ in range(3):
        page.get_by_role("button", name="Add a field").click()
    assert [f["name"] for f in definition(page)["fields"]] == ["full_name", "field_2", "field_3", "field_4"]
    page.locator("#fe-1-name").fill("allergies")
    page.locator("#fe-1-name").dispatch_event("change")
    page.locator("#fe-1-label").fill("Any allergies?")
    page.locator("#fe-1-label").dispatch_event("change")
    page.locator("#fe-1-type").select_option("radio")
    page.locator("#fe-1-options").fill("yes, no")
    page.locator("#fe-1-options").dispatch_event("change")
    page.locator("#fe-1-required").check()
    page.locator("#fe-2-name").fill("allergy_detail")
    page.locator("#fe-2-name").dispatch_event("change")
    page.locator("#fe-2-label").fill("Which allergies?")
    page.locator("#fe-2-label").dispatch_event("change")
    page.locator("#fe-2-type").select_option("textarea")
    page.locator("#fe-2-showif").select_option("allergies")
    page.locator("#fe-2-equals").select_option("yes")
    page.locator("#fe-3-max").fill("80")
    page.locator("#fe-3-max").dispatch_event("change")
    page.locator("fieldset[data-field=field_4]").get_by_role("button", name="Move up").click()
    assert [f["name"] for f in definition(page)["fields"]] == [
        "full_name",
        "allergies",
        "field_4",
        "allergy_detail",
    ]
    page.locator("fieldset[data-field=field_4]").get_by_role("button", name="Remove").click()
    fields = definition(page)["fields"]
    assert [f["name"] for f in fields] == ["full_name", "allergies", "allergy_detail"]
    assert fields[1] == {"name": "allergies", "label": "Any allergies?", "type": "radio",
                         "options": ["yes", "no"], "required": True}  # fmt: skip
    assert fields[2]["show_if"] == {"field": "allergies", "equals": "yes"}
    no_sideways_scroll(page)

    # The preview applies the condition as the patient answers.
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    preview.wait_for()
    detail = preview.locator(".c-allergy_detail")
    # forms.js applies the rules on DOMContentLoaded, after #preview is already drawn: wait for it.
    expect(page.locator("#preview-note")).to_contain_text("appear as you answer")
    expect(detail).to_be_hidden()
    preview.get_by_label("yes").check()
    expect(detail).to_be_visible()
    preview.get_by_label("no").check()
    expect(detail).to_be_hidden()

    # Settings beyond the fields stay in the JSON; an edit there reaches the field editor too.
    raw = definition(page) | {"min_fill_seconds": 0}
    raw["fields"][0]["label"] = "Legal name"
    page.locator("#definition").fill(json.dumps(raw))
    page.locator("#definition").dispatch_event("change")
    assert page.locator("#fe-0-label").input_value() == "Legal name"
    page.get_by_role("button", name="Create").click()
    page.get_by_role("heading", name=re.compile(r"^Form ")).wait_for()
    form_id = page.url.rsplit("/", 1)[-1]
    assert "version 1 of 1" in page.get_by_role("heading", name=re.compile(r"^Form ")).inner_text()
    page.locator("#fe-0-label").fill("Your full name")
    page.locator("#fe-0-label").dispatch_event("change")
    page.get_by_role("button", name="Publish a new version").click()
    page.get_by_role("heading", name=re.compile("version 2 of 2")).wait_for()
    assert page.locator("#versions tbody tr").count() == 2
    no_sideways_scroll(page)

    with httpx.Client(base_url=console.url, verify=default_context()) as web:
        hosted = web.get(f"/f/{form_id}")
        assert "Your full name" in hosted.text
        hit = TOKEN.search(hosted.text)
        assert hit
        answers = {
            "_token": hit.group(1),
            "full_name": "Pat Doe",
            "allergies": "yes",
            "allergy_detail": "Penicillin",
        }
        assert web.post(f"/f/{form_id}", data=answers, follow_redirects=False).status_code == 303
    page.goto(f"{console.url}/console/submissions?form={form_id}")
    rows = page.locator("table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1 and "delivered" in rows.first.inner_text()
    assert "Penicillin" not in page.content()  # facts only in the list
    no_sideways_scroll(page)
    assert [p for p in problems if not p.endswith("/favicon.ico")] == []
