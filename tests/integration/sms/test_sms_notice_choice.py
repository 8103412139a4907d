"""Per-recipient notice channel (issue 17): ``notice: {address: "sms"}`` on POST /v1/messages.

SMS only: the portal holds the message, the PHI-free text carries its link, and no email
notice goes.  Intake refuses (422, naming the address) an SMS choice the tenant cannot
honour — no contact, no consent.  Consent withdrawn between intake and delivery (a STOP)
falls back to the email notice, and the recipient's trail says why; so does a patient's
"no text messages" (164.522(b)), which outranks the sender's choice, and a redirect sends that
email notice to the patient's alternative address.
"""

from __future__ import annotations

import re

import httpx
import pytest
import sqlalchemy as sa
from tests.integration.portal.portal_harness import LINK, PATIENT, SENDER, Stack
from tests.integration.sms.conftest import noon_zone
from tests.integration.sms.test_sms_portal import OURS, PHONE
from tests.support.loop_thread import LoopThread
from tests.support.smpp_server import SmppServer

from sealmail.app import build_texting_sender
from sealmail.store.tables import recipients


def _contact(stack: Stack, *, notice: bool = True) -> None:
    svc = stack.services
    svc.texting.add_sender(stack.tenant.id, OURS, "test")
    svc.texting.put_contact(
        stack.tenant.id, PHONE, time_zone=noon_zone(), address=PATIENT, notice="email",
        consents={"notice": notice, "code": True, "reminder": False}, actor="test",
    )  # fmt: skip


def _send(stack: Stack, notice: dict[str, str]) -> httpx.Response:
    body = {
        "from": SENDER, "to": [PATIENT], "subject": "Your lab results", "text": "Potassium is normal.",
        "stream": "phi", "protection": "secure", "notice": notice,
    }  # fmt: skip
    with stack.api() as api:
        return api.post("/v1/messages", json=body)


def _recipient(stack: Stack, mid: str) -> sa.Row[tuple[str, str, str]]:
    with stack.services.engine.connect() as conn:
        return conn.execute(
            sa.select(recipients.c.status, recipients.c.method, recipients.c.method_reason).where(
                recipients.c.message_id == mid
            )
        ).one()


def _mailed(stack: Stack, mid: str) -> bool:
    return any(f"X-Sealmail-Message-Id: {mid}".encode() in m.data for m in stack.patient_sink.messages)


def _texts_sent(stack: Stack) -> int:
    sender = build_texting_sender(stack.services)
    loop = LoopThread()
    try:
        return loop.run(sender.send_due())
    finally:
        loop.run(sender.provider.close())  # type: ignore[union-attr]
        loop.close()


def test_sms_only_texts_the_link_and_sends_no_email_notice(stack: Stack, smsc: SmppServer) -> None:
    _contact(stack)
    r = _send(stack, {PATIENT.upper(): "sms"})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    stack.run_worker()
    row = _recipient(stack, mid)
    assert (row.status, row.method) == ("delivered", "portal")
    assert "notice by SMS only" in row.method_reason
    assert not _mailed(stack, mid)
    sender = build_texting_sender(stack.services)
    loop = LoopThread()
    try:
        assert loop.run(sender.send_due()) == 1
    finally:
        loop.run(sender.provider.close())  # type: ignore[union-attr]
        loop.close()
    [sub] = smsc.submitted
    hit = re.fullmatch(r"You have a secure message from Riverside Clinic: (\S+)", sub.text)
    assert hit and LINK.fullmatch(hit.group(1).encode()), sub.text
    assert "Potassium" not in sub.text and "lab" not in sub.text
    # The texted link opens the portal's sign-in for that message.
    page = httpx.get(hit.group(1), follow_redirects=True)
    assert page.status_code == 200 and "code" in page.text.lower()


def test_intake_refuses_an_sms_choice_it_cannot_honour(stack: Stack) -> None:
    r = _send(stack, {PATIENT: "sms"})
    assert r.status_code == 422
    problem = r.json()
    assert problem["errors"][0]["field"] == f"notice.{PATIENT}"
    assert "no SMS contact" in problem["errors"][0]["message"]
    _contact(stack, notice=False)
    r = _send(stack, {PATIENT: "both"})
    assert r.status_code == 422 and "not consented" in r.text
    r = _send(stack, {"someone@else.example": "email"})
    assert r.status_code == 422 and "not a recipient" in r.text
    r = _send(stack, {PATIENT: "pigeon"})
    assert r.status_code == 422


def test_consent_withdrawn_before_delivery_falls_back_to_email(stack: Stack, smsc: SmppServer) -> None:
    _contact(stack)
    r = _send(stack, {PATIENT: "sms"})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    _contact(stack, notice=False)  # the patient texted STOP meanwhile
    link = stack.notice_link(mid)  # runs the worker; the email notice arrived
    assert link
    row = _recipient(stack, mid)
    assert row.status == "delivered" and row.method == "portal"
    assert "SMS notice not possible (no_consent), sent by email" in row.method_reason
    assert smsc.submitted == []


@pytest.mark.hipaa("164.522(b)")
def test_sms_only_to_a_patient_who_asked_for_no_texts_goes_by_email_and_says_why(
    stack: Stack, smsc: SmppServer
) -> None:
    _contact(stack)  # consent to notices by text stands: only the preference forbids it
    prefs = stack.services.evidence.preferences
    pref = prefs.record(stack.tenant.id, PATIENT, "no_sms", "portal:pat", "portal")
    r = _send(stack, {PATIENT: "sms"})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    assert stack.notice_link(mid)  # the email notice arrived at the patient's own address
    row = _recipient(stack, mid)
    assert (row.status, row.method) == ("delivered", "portal")
    assert "notice by SMS only" not in row.method_reason
    assert f"no SMS notice (patient's preference {pref.id}; 164.522(b))" in row.method_reason
    assert (
        "SMS notice not possible (the patient asked for no text messages, 164.522(b)), sent by email"
        in row.method_reason
    )
    assert _texts_sent(stack) == 0
    assert smsc.submitted == []


@pytest.mark.hipaa("164.522(b)")
def test_sms_only_to_a_redirected_patient_without_texts_mails_the_alternative_address(
    stack: Stack, smsc: SmppServer
) -> None:
    _contact(stack)
    other = "elsewhere@plain.example"  # same loopback MX as the patient's own address
    prefs = stack.services.evidence.preferences
    prefs.record(stack.tenant.id, PATIENT, "redirect", "staff:ann", "staff", "form 12", other)
    prefs.record(stack.tenant.id, PATIENT, "no_sms", "staff:ann", "staff", "form 12")
    r = _send(stack, {PATIENT: "sms"})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    assert stack.notice_link(mid)
    mailed = [m for m in stack.patient_sink.messages if f"X-Sealmail-Message-Id: {mid}".encode() in m.data]
    assert [m.rcpt_tos for m in mailed] == [(other,)]
    row = _recipient(stack, mid)
    assert row.method == "portal" and f"redirected to {other}" in row.method_reason
    assert "sent by email" in row.method_reason
    assert _texts_sent(stack) == 0
    assert smsc.submitted == []
