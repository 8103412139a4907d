"""Texts through both providers, against loopback servers speaking their real protocols.

SMPP 3.4 against ``tests/support/smpp_server`` (bind_transceiver, submit_sm, deliver_sm
receipts and inbound texts, enquire_link both ways); the HTTP provider against
``tests/support/twilio_server`` (form POST with basic auth, signed status and inbound
callbacks to Sealmail's public site served by uvicorn).  Every test checks the stored
trail, the events on the message and the audit log, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.portal.portal_harness import serve
from tests.integration.sms.conftest import twilio_site
from tests.support.loop_thread import LoopThread
from tests.support.smpp_server import SmppServer
from tests.support.twilio_server import TwilioServer
from tests.support.waiting import wait_until

from sealmail import audit
from sealmail.app import Services, build_services, build_texting_sender
from sealmail.domain.statuses import SmsStatus
from sealmail.intake.portal_site import create_portal_site
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.sms.rules import Template
from sealmail.sms.service import Texting, TextRequest
from sealmail.sms.smpp.client import SmppOptions
from sealmail.sms.smpp_provider import SmppProvider
from sealmail.sms.tables import sms_texts
from sealmail.store.tables import audit_log, events

OURS, PAT = "+14155550100", "+14155550123"
LINK = "http://127.0.0.1:8000/p/" + "Ab3_-" * 9


def _next_noon() -> datetime:
    """The next 20:00 UTC at least an hour away (midday in Los Angeles, 12:00 or 13:00).

    Not a fixed date: texts queued by the public site carry the real clock's due time, and
    the worker's ``send_due`` at a fixed past "noon" found them not yet due once that day
    had passed 20:00 UTC (the suite failed every evening)."""
    now = datetime.now(UTC)
    noon = now.replace(hour=20, minute=0, second=0, microsecond=0)
    return noon if noon >= now + timedelta(hours=1) else noon + timedelta(days=1)


NOON = _next_noon()


def message_for(services: Services, tenant: TenantFixture) -> str:
    body = MessageIn.model_validate(
        {
            "from": "Dr Lee <lee@clinic.example>",
            "to": ["pat@example.net"],
            "subject": "Results",
            "text": "x",
            "stream": "phi",
        }
    )
    result, _ = services.messages.submit(tenant.principal, compose.from_message(body, "clinic.example", 10))
    return result.id


def configure(texting: Texting, tenant: TenantFixture, **consents: bool) -> None:
    texting.add_sender(tenant.id, OURS, "test")
    texting.put_contact(
        tenant.id, "+1 (415) 555-0123", time_zone="America/Los_Angeles", address="Pat@Example.net",
        notice="both", consents={"notice": True, "code": True, "reminder": True, **consents}, actor="test",
    )  # fmt: skip


def rows(services: Services) -> list[Any]:
    with services.engine.connect() as conn:
        return list(conn.execute(sa.select(sms_texts).order_by(sms_texts.c.created_at, sms_texts.c.id)))


def audit_actions(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        return list(conn.execute(sa.select(audit_log.c.action).order_by(audit_log.c.seq)).scalars())


def smpp_texting(
    services: Services, smsc: SmppServer, clock: Any = None, password: str = "secret12"
) -> Texting:
    texting = Texting(services.engine, services.keyring, services.tenancy, clock=clock or (lambda: NOON))
    host, port = smsc.address
    options = SmppOptions(host, port, "sealmail", password, timeout=5, keepalive=0.2)
    texting.provider = SmppProvider(options, texting)
    return texting


def test_smpp_notice_is_the_fixed_text_and_its_receipt_becomes_an_event(
    services: Services, tenant: TenantFixture, smsc: SmppServer, loop: LoopThread
) -> None:
    texting = smpp_texting(services, smsc)
    configure(texting, tenant)
    mid = message_for(services, tenant)
    try:
        req = TextRequest(tenant.id, PAT, Template.NOTICE, "Riverside Clinic", link=LINK, message_id=mid)
        result = loop.run(texting.send(req))
        assert result.status is SmsStatus.SENT
        [sub] = smsc.submitted
        assert sub.text == f"You have a secure message from Riverside Clinic: {LINK}"
        assert (sub.destination, sub.dest_ton, sub.source, sub.registered_delivery) == (
            "14155550123",
            1,
            "14155550100",
            1,
        )
        wait_until(lambda: rows(services)[0].status == "delivered", 10, "no delivery receipt recorded")
        assert smsc.deliver_resps, "the receipt's deliver_sm was not acknowledged"
        # Keepalive: our enquire_link every 0.2 s, and the SMSC's own answered.
        wait_until(lambda: smsc.enquire_links >= 1, 5, "no enquire_link from the ESME")
        smsc.enquire()
        wait_until(lambda: smsc.enquire_resps == 1, 5, "the ESME did not answer enquire_link")
    finally:
        loop.run(texting.provider.close())  # type: ignore[union-attr]
    [row] = rows(services)
    assert row.provider_message_id == sub.message_id and LINK.encode() not in row.content
    with services.engine.connect() as conn:
        types = list(conn.execute(sa.select(events.c.type, events.c.data).where(events.c.message_id == mid)))
    by_type = {t: d for t, d in types}
    assert by_type["sms.sent"]["provider_message_id"] == sub.message_id
    assert by_type["sms.delivered"]["receipt"] == "DELIVRD"
    assert LINK not in json.dumps(by_type)
    actions = audit_actions(services)
    assert actions[-2:] == ["sms:sent", "sms:receipt"]
    assert audit.verify(services.engine).ok


def test_stop_is_honoured_at_once_per_purpose_and_start_restores(
    services: Services, tenant: TenantFixture, smsc: SmppServer, loop: LoopThread
) -> None:
    texting = smpp_texting(services, smsc)
    configure(texting, tenant)
    mid = message_for(services, tenant)
    try:
        loop.run(texting.provider.session.open())  # type: ignore[union-attr]
        smsc.deliver(PAT, OURS, "stop reminders")
        wait_until(lambda: len(smsc.submitted) == 1, 10, "no STOP confirmation")
        assert smsc.submitted[0].text.startswith("Clinic: you are unsubscribed")
        assert texting.contact(tenant.id, PAT)["consents"] == {
            "notice": True,
            "code": True,
            "reminder": False,
        }
        refused = loop.run(texting.send(TextRequest(tenant.id, PAT, Template.REMINDER, "Riverside Clinic",
                                                    link=LINK, message_id=mid)))  # fmt: skip
        assert (refused.status, refused.reason) == (SmsStatus.REFUSED, "no_consent")
        smsc.deliver(PAT, OURS, "STOP")
        wait_until(lambda: len(smsc.submitted) == 2, 10, "no second STOP confirmation")
        note = TextRequest(tenant.id, PAT, Template.NOTICE, "Riverside Clinic", link=LINK, message_id=mid)
        assert loop.run(texting.send(note)).status is SmsStatus.REFUSED
        smsc.deliver(PAT, OURS, "HELP")
        wait_until(lambda: len(smsc.submitted) == 3, 10, "no HELP reply")
        assert "Reply STOP to opt out" in smsc.submitted[2].text
        smsc.deliver(PAT, OURS, "Start")
        wait_until(lambda: len(smsc.submitted) == 4, 10, "no START confirmation")
        assert loop.run(texting.send(note)).status is SmsStatus.SENT
    finally:
        loop.run(texting.provider.close())  # type: ignore[union-attr]
    actions = audit_actions(services)
    assert actions.count("sms:opted_out") == 2 and actions.count("sms:opted_in") == 1
    assert "sms:inbound" in actions and "sms:refused" in actions


def test_quiet_hours_hold_notices_in_the_contacts_zone_but_not_codes(
    services: Services, tenant: TenantFixture, smsc: SmppServer, loop: LoopThread
) -> None:
    now = [datetime(2026, 12, 5, 6, 30, tzinfo=UTC)]  # 22:30 in Los Angeles
    texting = smpp_texting(services, smsc, clock=lambda: now[0])
    configure(texting, tenant)
    try:
        held = loop.run(
            texting.send(TextRequest(tenant.id, PAT, Template.NOTICE, "Riverside Clinic", link=LINK))
        )
        assert (held.status, held.reason) == (SmsStatus.SCHEDULED, "quiet_hours")
        code = loop.run(
            texting.send(TextRequest(tenant.id, PAT, Template.CODE, "Riverside Clinic", code="123456"))
        )
        assert code.status is SmsStatus.SENT
        assert rows(services)[0].due_at == datetime(2026, 12, 5, 16, 0, tzinfo=UTC)  # 08:00 local
        assert loop.run(texting.send_due()) == 0
        now[0] = datetime(2026, 12, 5, 16, 1, tzinfo=UTC)
        assert loop.run(texting.send_due()) == 1
    finally:
        loop.run(texting.provider.close())  # type: ignore[union-attr]
    assert [s.text[:10] for s in smsc.submitted] == ["123456 is ", "You have a"]


def test_a_wrong_smpp_password_is_a_failed_text_not_a_crash(
    services: Services, tenant: TenantFixture, smsc: SmppServer, loop: LoopThread
) -> None:
    texting = smpp_texting(services, smsc, password="wrong")
    configure(texting, tenant)
    try:
        result = loop.run(
            texting.send(TextRequest(tenant.id, PAT, Template.NOTICE, "Riverside Clinic", link=LINK))
        )
    finally:
        loop.run(texting.provider.close())  # type: ignore[union-attr]
    assert result.status is SmsStatus.FAILED and "bind_transceiver refused" in result.reason
    assert smsc.binds == [("sealmail", "wrong", 0x0E)]
    assert rows(services)[0].status == "failed"
    assert audit_actions(services)[-1] == "sms:failed"


def test_bad_numbers_and_zones_are_problem_details(services: Services, tenant: TenantFixture) -> None:
    from fastapi.testclient import TestClient

    from sealmail.intake.api.app import create_api

    with TestClient(create_api(services), raise_server_exceptions=False) as client:
        h = {"Authorization": f"Bearer {tenant.api_key}"}
        r = client.put("/v1/sms/contacts/5550123", json={"time_zone": "UTC"}, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "number"
        r = client.put("/v1/sms/contacts/+14155550123", json={"time_zone": "Mars/Olympus"}, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "time_zone"
        r = client.put(
            "/v1/sms/contacts/+14155550123", json={"time_zone": "Europe/Berlin", "notice": "both"}, headers=h
        )
        assert r.status_code == 200 and r.json()["consents"]["notice"] is True
        assert client.get("/v1/sms/contacts/%2B14155550123", headers=h).json()["time_zone"] == "Europe/Berlin"
        assert client.get("/v1/sms/texts", headers=h).json() == {"data": []}


# -- the HTTP provider ------------------------------------------------------------------------------
def test_http_provider_posts_with_basic_auth_and_takes_signed_callbacks(
    tmp_path: Any, db_url: str, twilio: TwilioServer, loop: LoopThread
) -> None:
    from tests.conftest import make_tenant

    sock, base, settings = twilio_site(tmp_path, db_url, twilio)
    services = build_services(settings)
    try:
        tenant = make_tenant(services)
        texting = build_texting_sender(services)
        # Midday in the contact's zone, whatever the wall clock says (quiet hours hold notices).
        texting.now = lambda: NOON
        configure(texting, tenant)
        mid = message_for(services, tenant)
        req = TextRequest(tenant.id, PAT, Template.NOTICE, "Riverside Clinic", link=LINK, message_id=mid)
        assert loop.run(texting.send(req)).status is SmsStatus.SENT
        [call] = twilio.requests
        assert call["form"]["Body"] == f"You have a secure message from Riverside Clinic: {LINK}"
        assert call["form"]["To"] == PAT and call["form"]["From"] == OURS
        assert call["form"]["StatusCallback"] == f"{base}/sms/twilio/status"
        sid = rows(services)[0].provider_message_id
        with serve(create_portal_site(services), sock):
            status = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": twilio.account_sid}
            forged = twilio.callback(f"{base}/sms/twilio/status", status, signature="bm90IGEgc2lnbmF0dXJl")
            assert forged.status_code == 403
            assert rows(services)[0].status == "sent"
            assert twilio.callback(f"{base}/sms/twilio/status", status).status_code == 204
            assert rows(services)[0].status == "delivered"
            stop = {"From": PAT, "To": OURS, "Body": "STOP", "MessageSid": "SMin1"}
            assert twilio.callback(f"{base}/sms/twilio/inbound", stop).status_code == 200
        assert texting.contact(tenant.id, PAT)["consents"]["notice"] is False
        # The public site queued the STOP confirmation; the worker's loop sends it.
        assert loop.run(texting.send_due()) == 1
        assert twilio.requests[-1]["form"]["Body"].startswith("Clinic: you are unsubscribed")
        refused = loop.run(texting.send(req))
        assert refused.status is SmsStatus.REFUSED
        with services.engine.connect() as conn:
            types = set(conn.execute(sa.select(events.c.type).where(events.c.message_id == mid)).scalars())
        assert {"sms.sent", "sms.delivered"} <= types
    finally:
        services.close()


def test_a_provider_refusal_is_recorded_with_its_reply(
    services: Services, tenant: TenantFixture, twilio: TwilioServer, loop: LoopThread
) -> None:
    from sealmail.net.http_client import SafeHttpClient
    from sealmail.sms.twilio import TwilioOptions, TwilioProvider

    texting = Texting(services.engine, services.keyring, services.tenancy, clock=lambda: NOON)
    client = SafeHttpClient(None, allow_loopback=True, allow_http=True, timeout=5)
    texting.provider = TwilioProvider(
        TwilioOptions(twilio.account_sid, "wrong-token", twilio.base_url), client
    )
    configure(texting, tenant)
    result = loop.run(
        texting.send(TextRequest(tenant.id, PAT, Template.NOTICE, "Riverside Clinic", link=LINK))
    )
    assert result.status is SmsStatus.FAILED and "20003" in result.reason
    with services.engine.connect() as conn:
        details = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "sms:failed")
        ).scalar_one()
    assert details["provider_status"] == "401" and details["to"] == "+14…23"
