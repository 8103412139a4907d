"""The SMS channel end to end with the portal: a worker, loopback MX sinks, an SMSC, HTTP.

The patient chose email and SMS notices.  Their mail server offers no STARTTLS, so the
portal notice goes below the message's required level and (strictly) no sign-in code
may be emailed; a code texted to their phone never travelled with that notice, so it
opens the message.  The text carries the very link of the email notice, nothing else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from tests.integration.portal.portal_harness import PATIENT, Stack
from tests.integration.sms.conftest import noon_zone
from tests.support.client_tls import default_context
from tests.support.loop_thread import LoopThread
from tests.support.smpp_server import SmppServer
from tests.support.waiting import wait_until

from sealmail.app import build_texting_sender
from sealmail.sms.notices import PortalTexts
from sealmail.store.tables import events

OURS, PHONE = "+14155550100", "+14155550199"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def test_notice_reminder_and_code_by_sms_open_the_same_portal_message(stack: Stack, smsc: SmppServer) -> None:
    svc = stack.services
    svc.tenancy.update_settings(
        stack.tenant.id, {"secureline": {"portal_weak_notice": "require_strong_factor"}}, actor="test"
    )
    svc.texting.add_sender(stack.tenant.id, OURS, "test")
    svc.texting.put_contact(
        stack.tenant.id,
        PHONE,
        time_zone=noon_zone(),
        address=PATIENT.upper(),
        notice="both",
        consents={"notice": True, "code": True, "reminder": True},
        actor="test",
    )
    sender = build_texting_sender(svc)
    loop = LoopThread()
    try:
        mid = stack.send()
        link = stack.notice_link(mid)
        assert loop.run(sender.send_due()) == 1
        assert [s.text for s in smsc.submitted] == [
            f"You have a secure message from Riverside Clinic: {link}"
        ]

        # Unread a day later: one reminder with the same link, and only one.
        later = datetime.now(UTC) + timedelta(days=1, minutes=1)
        reminders = PortalTexts(svc.texting)
        assert reminders.remind_unread(later) == 1
        assert reminders.remind_unread(later) == 0
        assert loop.run(sender.send_due()) == 1
        assert (
            smsc.submitted[-1].text
            == f"Reminder: you have an unread secure message from Riverside Clinic: {link}"
        )

        with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
            page = client.get(link, follow_redirects=True)
            assert 'id="text-code"' in page.text and 'id="send-code"' not in page.text
            csrf = CSRF.search(page.text)
            assert csrf
            page = client.post(
                "/p/signin/code", data={"csrf": csrf.group(1), "channel": "sms"}, follow_redirects=True
            )
            assert "We texted a code to your phone" in page.text
            assert loop.run(sender.send_due()) == 1
            wait_until(lambda: len(smsc.submitted) == 3, 10, "no code text")
            code = re.match(
                r"(\d{6}) is your Riverside Clinic secure message sign-in code", smsc.submitted[-1].text
            )
            assert code, smsc.submitted[-1].text
            csrf = CSRF.search(page.text)
            assert csrf
            opened = client.post(
                "/p/signin/verify", data={"csrf": csrf.group(1), "code": code.group(1)}, follow_redirects=True
            )
            assert "Your potassium level is normal." in opened.text
        wait_until(lambda: sum(1 for s in smsc.submitted if s.registered_delivery) == 3, 5, "receipts asked")
    finally:
        loop.run(sender.provider.close())  # type: ignore[union-attr]
        loop.close()
    # No code mail was sent to the patient: the only factor travelled by SMS.
    assert stack.code_mails() == []
    with svc.engine.connect() as conn:
        got = list(conn.execute(sa.select(events.c.type, events.c.data).where(events.c.message_id == mid)))
    code_sent = [d for t, d in got if t == "portal.code_sent"]
    assert [d["channel"] for d in code_sent] == ["sms"]
    assert sum(1 for t, _ in got if t == "sms.sent") == 3


@pytest.mark.hipaa("164.522(b)")
def test_a_patient_who_asked_for_no_texts_gets_no_notice_reminder_or_code_by_sms(
    stack: Stack, smsc: SmppServer
) -> None:
    svc = stack.services
    svc.texting.add_sender(stack.tenant.id, OURS, "test")
    svc.texting.put_contact(
        stack.tenant.id,
        PHONE,
        time_zone=noon_zone(),
        address=PATIENT,
        notice="both",
        consents={"notice": True, "code": True, "reminder": True},
        actor="test",
    )
    texts = svc.portal_texts
    assert texts is not None and texts.number_for(stack.tenant.id, PATIENT) == PHONE
    pref = svc.evidence.preferences.record(stack.tenant.id, PATIENT, "no_sms", "portal:pat", "portal")
    assert texts.number_for(stack.tenant.id, PATIENT) is None  # no code by text either
    sender = build_texting_sender(svc)
    loop = LoopThread()
    try:
        stack.notice_link(stack.send())  # the e-mail notice still arrives
        assert loop.run(sender.send_due()) == 0
        assert smsc.submitted == []
        assert texts.remind_unread(datetime.now(UTC) + timedelta(days=2)) == 0
    finally:
        loop.run(sender.provider.close())  # type: ignore[union-attr]
        loop.close()
    svc.evidence.preferences.revoke(stack.tenant.id, pref.id, "portal:pat", "portal")
    assert texts.number_for(stack.tenant.id, PATIENT) == PHONE
