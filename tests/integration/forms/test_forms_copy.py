"""The submitter's copy (issue 17): with ``submitter_copy`` on, whoever fills the form gets
their answers back as a secure portal message at the address they typed — the portal even
for an address that could take plain or TLS mail, since only the owner of that address may
sign in to read it.  The clinic's delivery is unchanged; a form without an email field
cannot offer a copy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import PATIENT, Stack, portal_stack
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer

from sealmail.store.tables import audit_log, messages, recipients

TOKEN = re.compile(r'name="_token" value="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
FORM = {
    "title": "New patient intake", "recipients": ["intake@clinic.example"], "sender": "forms@clinic.example",
    "min_fill_seconds": 0, "submitter_copy": True,
    "fields": [
        {"name": "email", "label": "Your email", "type": "email", "required": True},
        {"name": "reason", "label": "Reason for visit", "type": "textarea", "required": True},
    ],
}  # fmt: skip


@pytest.fixture
def stack(tmp_path: Path, sqlite_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, sqlite_url, dns, ca, mx) as s:
        yield s


def test_the_submitter_gets_a_portal_copy_and_the_clinic_its_delivery(stack: Stack) -> None:
    with stack.api() as api:
        r = api.post("/v1/forms", json=FORM)
    assert r.status_code == 201, r.text
    form_id = r.json()["id"]
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as web:
        hit = TOKEN.search(web.get(f"/f/{form_id}").text)
        assert hit
        answers = {"_token": hit.group(1), "email": PATIENT, "reason": "Recurring migraine since May"}
        posted = web.post(f"/f/{form_id}", data=answers, follow_redirects=False)
    assert posted.status_code == 303, posted.text
    with stack.services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages.c.id, messages.c.tags, messages.c.protection, recipients.c.address)
            .join(recipients, recipients.c.message_id == messages.c.id)
            .where(messages.c.source == "form")
            .order_by(messages.c.id)
        ).all()
    by_address = {r.address: r for r in rows}
    assert set(by_address) == {"intake@clinic.example", PATIENT}
    copy = by_address[PATIENT]
    assert copy.tags == ["form-copy"] and copy.protection == "secure"
    assert by_address["intake@clinic.example"].tags == []

    stack.run_worker()
    with stack.services.engine.connect() as conn:
        method = conn.execute(
            sa.select(recipients.c.status, recipients.c.method).where(recipients.c.message_id == copy.id)
        ).one()
        copied = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "form_submission:copied")
        ).scalar_one()
    assert tuple(method) == ("delivered", "portal")
    assert copied["message_id"] == copy.id
    link = stack.notice_link(copy.id)
    [notice] = [
        m for m in stack.patient_sink.messages if f"X-Sealmail-Message-Id: {copy.id}".encode() in m.data
    ]
    # The patient's mail carries the portal link only: no answer travels in the clear.
    assert b"migraine" not in notice.data.lower() and b"submission.pdf" not in notice.data
    # Signed in as that address (a code by email), the patient reads the copy in the portal.
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as web:
        page = web.get(link, follow_redirects=True)
        web.post("/p/signin/code", data={"csrf": _csrf(page)}, follow_redirects=True)
        code = stack.latest_code(0)
        opened = web.post("/p/signin/verify", data={"csrf": _csrf(page), "code": code}, follow_redirects=True)
    assert "This is a copy of the form you sent to Riverside Clinic" in opened.text
    assert "Recurring migraine since May" in opened.text


def _csrf(page: httpx.Response) -> str:
    hit = CSRF.search(page.text)
    assert hit, page.text
    return hit.group(1)


def test_a_copy_needs_an_email_field(stack: Stack) -> None:
    body = {**FORM, "fields": [{"name": "reason", "label": "Reason", "type": "textarea"}]}
    with stack.api() as api:
        r = api.post("/v1/forms", json=body)
    assert r.status_code == 422 and "submitter_copy needs an email field" in r.text
