"""Signed return paths out, DSN and ARF reports back in, on SQLite and PostgreSQL.

Deliveries go through the real worker to a loopback MX sink; reports come back to the
inbound listener from a real aiosmtplib client over STARTTLS.
"""

from __future__ import annotations

import asyncio
import json
import smtplib

import aiosmtplib
import sqlalchemy as sa
from standardwebhooks import Webhook
from tests.integration.bounces.conftest import VERP_RE, Bounces
from tests.integration.webhooks.receiver import Receiver
from tests.unit.bounces.samples import arf_report, gmail_delayed, postfix_dsn

from sealmail.app import build_return_paths, build_webhook_dispatcher
from sealmail.bounces.tables import feedback_reports
from sealmail.suppressions.service import SuppressionReason
from sealmail.webhooks.endpoints import EndpointSpec, WebhookEndpoints

PATIENT = "patient@example.net"


def test_each_recipient_is_sent_with_its_own_signed_return_path(bounces: Bounces) -> None:
    mid = bounces.pipeline.send(["a@example.net", "b@example.net"])
    assert bounces.pipeline.run_worker() == 2
    received = bounces.pipeline.sink.wait_for(2)
    by_rcpt = {m.rcpt_tos: VERP_RE.match(m.mail_from) for m in received}
    assert set(by_rcpt) == {("a@example.net",), ("b@example.net",)}
    ids = {r["email"]: r["id"] for r in bounces.pipeline.message(mid)["recipients"]}
    for (rcpt,), match in by_rcpt.items():
        assert match is not None
        assert match.group(1).upper().replace("RCP_", "rcp_") == ids[rcpt]


def test_dsn_to_the_return_path_bounces_the_delivered_recipient_once_and_suppresses_it(
    bounces: Bounces,
) -> None:
    mid, return_path = bounces.deliver(subject="HIV test result for Jane Roe")
    assert bounces.recipient(mid)["status"] == "delivered"
    dsn = postfix_dsn(PATIENT, return_path=return_path, trace_id=mid)

    sent = bounces.report(dsn, [return_path])
    assert sent.rcpts == [(250, "2.1.5 Recipient OK")]
    assert sent.data is not None and sent.data[0] == 250

    rcpt = bounces.recipient(mid)
    assert rcpt["status"] == "bounced"
    [event] = bounces.events(mid, "message.bounced")
    assert event["data"]["async"] is True
    assert event["data"]["status"] == "5.1.1"
    assert event["data"]["classification"] == "invalid_recipient"
    assert event["data"]["remote_mta"] == "mailstore.example.net"
    assert "HIV" not in json.dumps(event) and "Jane Roe" not in json.dumps(event)
    assert bounces.suppressions(PATIENT) == {"*": SuppressionReason.HARD_BOUNCE}

    # The MTA retries the same report: accepted again, applied once.
    again = bounces.report(dsn, [return_path])
    assert again.data is not None and again.data[0] == 250
    assert len(bounces.events(mid, "message.bounced")) == 1
    assert bounces.listener.reports["bounced"] == 1
    assert bounces.listener.reports["duplicate"] == 1
    with bounces.pipeline.services.engine.connect() as conn:
        [row] = conn.execute(sa.select(feedback_reports)).all()
    assert (row.kind, row.action, row.status, row.outcome) == ("dsn", "failed", "5.1.1", "bounced")
    assert row.tenant_id == bounces.pipeline.tenant.id


def test_policy_refusal_bounces_but_does_not_suppress(bounces: Bounces) -> None:
    mid, return_path = bounces.deliver()
    dsn = postfix_dsn(
        PATIENT,
        return_path=return_path,
        status="5.7.1",
        diagnostic="smtp; 550 5.7.1 Message rejected as spam by Content Filtering",
    )
    assert bounces.report(dsn, [return_path]).data == (250, "2.0.0 Report received")
    assert bounces.recipient(mid)["status"] == "bounced"
    [event] = bounces.events(mid, "message.bounced")
    assert event["data"]["classification"] == "spam_content"
    assert bounces.suppressions(PATIENT) == {}


def test_delay_notice_is_a_deferred_event_and_the_recipient_stays_delivered(bounces: Bounces) -> None:
    mid, return_path = bounces.deliver()
    assert bounces.report(gmail_delayed(PATIENT), [return_path]).data == (250, "2.0.0 Report received")
    assert bounces.recipient(mid)["status"] == "delivered"
    [event] = bounces.events(mid, "message.deferred")
    assert event["data"]["async"] is True
    assert event["data"]["status"] == "4.4.1"
    assert bounces.suppressions(PATIENT) == {}


def test_arf_to_the_feedback_address_is_matched_by_the_returned_return_path(bounces: Bounces) -> None:
    mid, return_path = bounces.deliver(stream="broadcast")
    arf = arf_report(rcpt=PATIENT, return_path=return_path)
    sent = bounces.report(arf, ["fbl@bounces.clinic.example"], mail_from="feedback@fbl.example.com")
    assert sent.mail[0] == 250 and sent.rcpts == [(250, "2.1.5 Recipient OK")]
    assert sent.data == (250, "2.0.0 Report received")
    [event] = bounces.events(mid, "message.complained")
    assert event["data"]["feedback_type"] == "abuse"
    assert event["data"]["async"] is True
    assert bounces.suppressions(PATIENT) == {"broadcast": SuppressionReason.COMPLAINT}
    assert bounces.recipient(mid)["status"] == "delivered"


def test_arf_without_return_path_is_matched_by_trace_header_and_original_recipient(bounces: Bounces) -> None:
    mid, _ = bounces.deliver(stream="broadcast")
    arf = arf_report(rcpt=PATIENT, trace_id=mid)
    assert bounces.report(arf, ["fbl@bounces.clinic.example"]).data == (250, "2.0.0 Report received")
    assert len(bounces.events(mid, "message.complained")) == 1


def test_unmatched_report_is_accepted_counted_and_changes_nothing(bounces: Bounces) -> None:
    mid, _ = bounces.deliver(stream="broadcast")
    # The trace id is right but the address is not one of that message's recipients.
    arf = arf_report(rcpt="someone-else@example.net", trace_id=mid)
    assert bounces.report(arf, ["fbl@bounces.clinic.example"]).data == (250, "2.0.0 Report received")
    assert bounces.events(mid, "message.complained") == []
    assert bounces.listener.reports["unmatched"] == 1


def test_forged_or_tampered_return_path_is_refused_with_550_5_1_1(bounces: Bounces) -> None:
    mid, return_path = bounces.deliver()
    local, domain = return_path.split("@")
    tampered = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    other_id = f"b+rcp_{'0' * 26}.{local.rsplit('.', 1)[1]}@{domain}"
    sent = bounces.report(postfix_dsn(PATIENT, return_path=tampered), [tampered, other_id])
    assert [code for code, _ in sent.rcpts] == [550, 550]
    assert all(msg.startswith("5.1.1") for _, msg in sent.rcpts)
    assert sent.data is None
    assert bounces.recipient(mid)["status"] == "delivered"
    assert bounces.listener.rejections["bad_return_path"] == 2


def test_inbound_listener_relays_nothing_and_refuses_mixed_envelopes_cleanly(bounces: Bounces) -> None:
    mid, return_path = bounces.deliver()
    sent = bounces.report(
        postfix_dsn(PATIENT, return_path=return_path),
        ["patient@example.org", "noreply@clinic.example", return_path, "fbl@clinic.example"],
        mail_from="attacker@example.org",
    )
    assert sent.rcpts[0] == (550, "5.7.1 Relaying denied")
    assert sent.rcpts[1] == (550, "5.7.1 Relaying denied")
    assert sent.rcpts[2][0] == 250
    assert sent.rcpts[3] == (550, "5.7.1 Relaying denied")
    # The report part of the transaction still counts; nothing went to message intake.
    assert sent.data == (250, "2.0.0 Report received")
    assert bounces.recipient(mid)["status"] == "bounced"
    messages = bounces.pipeline.services.messages.search(bounces.pipeline.tenant.principal).items
    assert [m.id for m in messages] == [mid]


def test_inbound_listener_requires_starttls_and_offers_no_auth(bounces: Bounces) -> None:
    _, return_path = bounces.deliver()
    sent = bounces.report(postfix_dsn(PATIENT), [return_path], starttls=False)
    assert sent.mail == (530, "5.7.0 Must issue a STARTTLS command first")

    async def ehlo() -> str:
        port = bounces.listener.port
        assert port is not None
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=port,
            start_tls=False,
            tls_context=bounces.ca.client_context(),
            timeout=10,
        )
        await client.connect()
        try:
            await client.ehlo()
            await client.starttls()
            response = await client.ehlo()
            auth = await client.execute_command(b"AUTH", b"PLAIN AGZvbwBiYXI=")
            return f"{response.message}\n{auth.code}"
        finally:
            client.close()

    text = asyncio.run(ehlo())
    assert "AUTH" not in text.split("\n")[:-1]
    assert text.endswith("502")


def test_submission_port_still_refuses_unauthenticated_mail_to_a_return_path(bounces: Bounces) -> None:
    _, return_path = bounces.deliver()
    client = smtplib.SMTP("127.0.0.1", bounces.gateway.port, timeout=10)
    try:
        client.ehlo()
        client.starttls(context=bounces.ca.client_context())
        client.ehlo()
        assert client.mail("")[0] == 530
        assert client.rcpt(return_path)[0] == 530
    finally:
        client.quit()


def test_async_bounce_reaches_a_webhook_endpoint(bounces: Bounces) -> None:
    services = bounces.pipeline.services
    endpoints = WebhookEndpoints(services.engine, services.keyring, allow_insecure_http=True)
    with Receiver() as receiver:
        _, secret = endpoints.create(
            bounces.pipeline.tenant.id,
            EndpointSpec(receiver.url, event_types=["message.bounced"]),
            actor="test",
        )
        mid, return_path = bounces.deliver()
        bounces.report(postfix_dsn(PATIENT, return_path=return_path), [return_path])
        assert asyncio.run(build_webhook_dispatcher(services).dispatch_once()) == 1
        [request] = receiver.requests
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "message.bounced"
    assert body["data"]["message_id"] == mid
    assert body["data"]["bounce"] == {"type": "hard", "classification": "invalid_recipient", "origin": "dsn"}
    assert PATIENT not in request.body.decode()


def test_verp_can_be_switched_off(bounces: Bounces) -> None:
    settings = bounces.pipeline.settings.model_copy(update={"verp_enabled": False})
    assert build_return_paths(bounces.pipeline.services, settings) is None
    assert build_return_paths(bounces.pipeline.services, bounces.pipeline.settings) is not None
