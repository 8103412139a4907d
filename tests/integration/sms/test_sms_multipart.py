"""Texts longer than one SMS, on the loopback SMSC at the wire level: GSM-7 in 153-character
segments and UCS-2 in 67-unit segments, each a submit_sm with esm_class UDHI and the
concatenation UDH (TS 23.040 IEI 0x00), one reference per text, a receipt asked for on
the last segment only — and the text's one receipt lands on its trail row."""

from __future__ import annotations

import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.sms.test_sms_providers import (
    NOON,
    OURS,
    PAT,
    configure,
    message_for,
    rows,
    smpp_texting,
)
from tests.support.loop_thread import LoopThread
from tests.support.smpp_server import SmppServer
from tests.support.twilio_server import TwilioServer
from tests.support.waiting import wait_until

from sealmail.app import Services
from sealmail.domain.statuses import SmsStatus
from sealmail.net.http_client import SafeHttpClient
from sealmail.sms.rules import Template, render
from sealmail.sms.service import Texting, TextRequest
from sealmail.sms.twilio import TwilioOptions, TwilioProvider
from sealmail.store.tables import audit_log

LONG_LINK = "https://portal.riverside-community-clinic.example/p/" + "Ab3_-Zx9_-" * 8


def test_a_long_gsm_text_goes_as_udh_segments_and_its_receipt_lands(
    services: Services, tenant: TenantFixture, smsc: SmppServer, loop: LoopThread
) -> None:
    texting = smpp_texting(services, smsc)
    configure(texting, tenant)
    org = "Riverside Community Health Clinic [East]"  # brackets: GSM extension, two septets each
    expected = render(Template.REMINDER, org, link=LONG_LINK)
    assert 160 < len(expected) + 2 <= 306
    try:
        req = TextRequest(
            tenant.id, PAT, Template.REMINDER, org, link=LONG_LINK, message_id=message_for(services, tenant)
        )
        assert loop.run(texting.send(req)).status is SmsStatus.SENT
        first, second = smsc.submitted
        wait_until(lambda: rows(services)[0].status == "delivered", 10, "the text's receipt never landed")
    finally:
        loop.run(texting.provider.close())  # type: ignore[union-attr]
    for sub in (first, second):
        assert sub.esm_class & 0x40 and sub.data_coding == 0
        assert sub.short_message[:1] == b"\x05"  # UDHL
    assert first.udh[:2] == second.udh[:2] == b"\x00\x03"
    assert first.udh[2] == second.udh[2]  # one reference for both parts
    assert (first.udh[3:], second.udh[3:]) == (b"\x02\x01", b"\x02\x02")
    # 153 septets in the first part: the ASCII text, the brackets counted twice.
    assert len(first.text) + first.text.count("[") + first.text.count("]") <= 153
    assert len(first.text) + first.text.count("[") + first.text.count("]") >= 152
    assert smsc.joined(PAT) == expected
    assert (first.registered_delivery, second.registered_delivery) == (0, 1)
    [row] = rows(services)
    assert row.provider_message_id == second.message_id


def test_a_long_unicode_text_goes_as_ucs2_segments_of_67(
    services: Services, tenant: TenantFixture, smsc: SmppServer, loop: LoopThread
) -> None:
    texting = smpp_texting(services, smsc)
    configure(texting, tenant)
    org = "Clínica São José de Nuñez"
    expected = render(Template.NOTICE, org, link=LONG_LINK)
    try:
        loop.run(texting.send(TextRequest(tenant.id, PAT, Template.NOTICE, org, link=LONG_LINK)))
        wait_until(lambda: rows(services)[0].status == "delivered", 10, "the text's receipt never landed")
    finally:
        loop.run(texting.provider.close())  # type: ignore[union-attr]
    subs = smsc.submitted
    assert len(subs) == -(-len(expected) // 67) >= 2
    assert all(s.data_coding == 8 and s.esm_class & 0x40 for s in subs)
    assert [len(s.short_message) for s in subs[:-1]] == [6 + 134] * (len(subs) - 1)
    assert [s.udh[4] for s in subs] == list(range(1, len(subs) + 1))
    assert smsc.joined(PAT) == expected
    assert subs[0].source == OURS.lstrip("+")


def test_a_short_text_has_no_udh(
    services: Services, tenant: TenantFixture, smsc: SmppServer, loop: LoopThread
) -> None:
    texting = smpp_texting(services, smsc)
    configure(texting, tenant)
    try:
        loop.run(texting.send(TextRequest(tenant.id, PAT, Template.CODE, "Clinic", code="482913")))
    finally:
        loop.run(texting.provider.close())  # type: ignore[union-attr]
    [sub] = smsc.submitted
    assert sub.esm_class == 0 and sub.udh == b"" and sub.registered_delivery == 1
    assert sub.short_message.startswith(b"482913 is your Clinic")


def test_the_http_provider_gets_the_whole_text_and_reports_its_segments(
    services: Services, tenant: TenantFixture, twilio: TwilioServer, loop: LoopThread
) -> None:
    """Twilio concatenates a long Body itself: one POST with the whole text, its count kept."""
    texting = Texting(services.engine, services.keyring, services.tenancy, clock=lambda: NOON)
    client = SafeHttpClient(None, allow_loopback=True, allow_http=True, timeout=5)
    texting.provider = TwilioProvider(
        TwilioOptions(twilio.account_sid, twilio.auth_token, twilio.base_url), client
    )
    configure(texting, tenant)
    org = "Riverside Community Health Clinic East"
    req = TextRequest(
        tenant.id, PAT, Template.REMINDER, org, link=LONG_LINK, message_id=message_for(services, tenant)
    )
    assert loop.run(texting.send(req)).status is SmsStatus.SENT
    [call] = twilio.requests
    assert call["form"]["Body"] == render(Template.REMINDER, org, link=LONG_LINK)
    with services.engine.connect() as conn:
        details = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "sms:sent")
        ).scalar_one()
    assert details["segments"] == 2
