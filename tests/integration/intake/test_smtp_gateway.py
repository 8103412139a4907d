"""The SMTP submission gateway over real loopback connections, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import re
import smtplib
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import idna
import pytest
import sqlalchemy as sa
from tests.support.ca import TestCA
from tests.support.waiting import wait_until

from sealmail.app import Services, intake_limits
from sealmail.audit import AuditAction
from sealmail.domain.addresses import parse_address
from sealmail.domain.tls_policy import Stream
from sealmail.intake.smtp import SmtpGateway, server_tls_context
from sealmail.messages.compose import submission_from_raw
from sealmail.messages.schemas import message_body, message_page
from sealmail.store.tables import audit_log

SENDER = "doctor@clinic.example"
EXTERNAL = "patient@example.org"
QUEUED = re.compile(rb"^2\.0\.0 Ok: queued as (msg_[0-9a-z]+)$", re.IGNORECASE)


def message(
    *,
    sender: str = SENDER,
    to: str = EXTERNAL,
    subject: str = "Your appointment",
    body: str = "See you on Tuesday.",
    message_id: str | None = "<fixed-1@clinic.example>",
    with_from: bool = True,
) -> bytes:
    lines = []
    if with_from:
        lines.append(f"From: Dr. Lee <{sender}>")
    lines += [
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Tue, 01 Apr 2025 09:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def auth_plain(client: smtplib.SMTP, username: str, password: str) -> tuple[int, bytes]:
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {token}")


def send(
    client: smtplib.SMTP,
    raw: bytes,
    *,
    mail_from: str = SENDER,
    rcpts: tuple[str, ...] = (EXTERNAL,),
    mail_options: tuple[str, ...] = (),
) -> tuple[int, bytes]:
    code, reply = client.mail(mail_from, list(mail_options))
    assert code == 250, reply
    for rcpt in rcpts:
        code, reply = client.rcpt(rcpt)
        assert code == 250, reply
    return client.data(raw)


def queued_id(code: int, reply: bytes) -> str:
    assert code == 250, reply
    match = QUEUED.match(reply)
    assert match, reply
    return match.group(1).decode()


def stored_ids(services: Services, tenant: Any) -> list[str]:
    return [m["id"] for m in message_page(services.messages.search(tenant.principal))["data"]]


def audit_rows(services: Services, action: AuditAction) -> list[dict[str, Any]]:
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log).where(audit_log.c.action == str(action)))
        return [dict(r._mapping) for r in rows]


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def authenticated(connect: Any, gateway: SmtpGateway, credential: tuple[str, str, str]) -> smtplib.SMTP:
    client = connect(gateway)
    code, reply = auth_plain(client, credential[1], credential[2])
    assert code == 235, reply
    return client


# -- STARTTLS and AUTH --------------------------------------------------------------------------


@pytest.mark.hipaa("164.312(d)")
def test_auth_is_not_offered_before_starttls_and_refused_if_attempted(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str]
) -> None:
    client = connect(gateway, starttls=False)
    assert client.has_extn("starttls")
    assert not client.has_extn("auth")
    code, reply = auth_plain(client, credential[1], credential[2])
    # RFC 4954 §4: the password must not be sent before TLS.
    assert (code, reply[:6]) == (538, b"5.7.11")
    code, reply = client.mail(SENDER)
    assert (code, reply[:5]) == (530, b"5.7.0")


def test_ehlo_after_starttls_offers_plain_login_size_smtputf8_and_8bitmime(
    gateway: SmtpGateway, connect: Any, services: Services
) -> None:
    client = connect(gateway)
    assert sorted(client.esmtp_features["auth"].split()) == ["LOGIN", "PLAIN"]
    assert client.esmtp_features["size"] == str(services.settings.smtp_max_message_bytes)
    assert client.has_extn("smtputf8")
    assert client.has_extn("8bitmime")
    assert not client.has_extn("starttls")
    assert isinstance(client.sock, ssl.SSLSocket)
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.hipaa("164.312(e)(1)")
def test_starttls_context_refuses_tls_below_1_2(tls_files: Any, connector_ca: TestCA) -> None:
    # A TLS 1.1 client cannot be driven from here (OpenSSL's security level refuses it on
    # the client side first), so the server context itself is checked.
    context = server_tls_context(*tls_files, Path(connector_ca.ca_file))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert server_tls_context(*tls_files, None).verify_mode == ssl.CERT_NONE


def test_auth_plain_submission_is_stored_with_recipients_events_and_audit(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = authenticated(connect, gateway, credential)
    second = "nurse@example.net"
    message_id = queued_id(*send(client, message(), rcpts=(EXTERNAL, second)))

    stored = message_body(services.messages.get(tenant.principal, message_id))
    assert stored["source"] == "smtp"
    assert stored["stream"] == "transactional"
    assert stored["from"] == SENDER
    assert stored["mail_from"] == SENDER
    assert stored["status"] == "queued"
    assert sorted(r["email"] for r in stored["recipients"]) == sorted([EXTERNAL, second])
    assert {r["status"] for r in stored["recipients"]} == {"queued"}
    events = services.messages.list_events(tenant.principal, message_id=message_id).data
    assert sorted((e["type"], e["recipient"]) for e in events) == sorted(
        [("message.accepted", EXTERNAL), ("message.accepted", second)]
    )
    assert {e["data"]["source"] for e in events} == {"smtp"}
    (entry,) = [r for r in audit_rows(services, AuditAction.MESSAGE_ACCEPTED) if r["target"] == message_id]
    assert entry["actor"] == credential[0]
    assert entry["tenant_id"] == tenant.id
    assert entry["details"]["source"] == "smtp"
    assert entry["details"]["recipients"] == 2


def test_auth_login_submission_is_accepted(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = connect(gateway)
    client.user, client.password = credential[1], credential[2]
    code, reply = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
    assert code == 235, reply
    message_id = queued_id(*send(client, message()))
    assert (
        message_body(services.messages.get(tenant.principal, message_id))["recipients"][0]["email"]
        == EXTERNAL
    )


def test_credential_stream_is_used(
    gateway: SmtpGateway, connect: Any, services: Services, tenant: Any
) -> None:
    credential = services.tenancy.create_smtp_credential(tenant.id, actor="test", stream=Stream.PHI)
    client = authenticated(connect, gateway, credential)
    message_id = queued_id(*send(client, message(message_id=None)))
    assert message_body(services.messages.get(tenant.principal, message_id))["stream"] == "phi"


def test_wrong_password_is_refused_with_535_and_audited(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = connect(gateway)
    code, reply = auth_plain(client, credential[1], "not-the-password")
    assert (code, reply[:5]) == (535, b"5.7.8")
    failures = audit_rows(services, AuditAction.SMTP_AUTH_FAILED)
    assert [(r["target"], r["tenant_id"]) for r in failures] == [(credential[0], tenant.id)]
    # The connection is still usable but not authenticated.
    code, _ = client.mail(SENDER)
    assert code == 530


def test_malformed_or_impersonating_auth_plain_is_refused_with_501(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str]
) -> None:
    client = connect(gateway)
    code, reply = client.docmd("AUTH", "PLAIN not-base64!")
    assert (code, reply[:5]) == (501, b"5.5.2")
    # RFC 4616 authzid: acting as someone else is not supported.
    token = base64.b64encode(f"other-user\0{credential[1]}\0{credential[2]}".encode()).decode()
    code, reply = client.docmd("AUTH", f"PLAIN {token}")
    assert (code, reply[:5]) == (501, b"5.5.2")
    assert client.mail(SENDER)[0] == 530


def test_third_failed_auth_closes_the_connection_with_421(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str]
) -> None:
    client = connect(gateway)
    assert auth_plain(client, credential[1], "wrong-1")[0] == 535
    assert auth_plain(client, credential[1], "wrong-2")[0] == 535
    code, reply = auth_plain(client, credential[1], "wrong-3")
    assert (code, reply[:5]) == (421, b"4.7.0")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    assert gateway.rejections["auth_failed"] == 3


# -- no open relay and connectors -------------------------------------------------------------


def test_unauthenticated_mail_to_an_external_domain_is_refused(
    gateway: SmtpGateway, connect: Any, services: Services, tenant: Any
) -> None:
    client = connect(gateway)
    code, reply = client.mail(SENDER)
    assert (code, reply) == (530, b"5.7.0 Authentication required")
    code, reply = client.rcpt(EXTERNAL)
    assert (code, reply) == (530, b"5.7.0 Authentication required")
    assert stored_ids(services, tenant) == []


def test_connector_network_relays_without_auth(
    start_gateway: Any, connect: Any, services: Services, tenant: Any
) -> None:
    gateway = start_gateway(smtp_connector_networks=["127.0.0.1/32"], smtp_connector_tenant=tenant.id)
    client = connect(gateway)
    message_id = queued_id(*send(client, message()))
    stored = message_body(services.messages.get(tenant.principal, message_id))
    assert stored["stream"] == "transactional"
    (entry,) = [r for r in audit_rows(services, AuditAction.MESSAGE_ACCEPTED) if r["target"] == message_id]
    assert entry["actor"] == "connector:127.0.0.1"


def test_connector_network_still_needs_starttls(start_gateway: Any, connect: Any, tenant: Any) -> None:
    gateway = start_gateway(smtp_connector_networks=["127.0.0.1/32"], smtp_connector_tenant=tenant.id)
    client = connect(gateway, starttls=False)
    code, reply = client.mail(SENDER)
    assert (code, reply) == (530, b"5.7.0 Must issue a STARTTLS command first")


def test_connector_client_certificate_relays_without_auth(
    start_gateway: Any, connect: Any, services: Services, tenant: Any, connector_ca: TestCA
) -> None:
    gateway = start_gateway(
        smtp_connector_networks=["192.0.2.0/24"],
        smtp_connector_tenant=tenant.id,
        smtp_connector_client_ca=connector_ca.ca_file,
    )
    client = connect(gateway, client_cert=connector_ca.issue("connector.clinic.example"))
    message_id = queued_id(*send(client, message()))
    assert message_body(services.messages.get(tenant.principal, message_id))["source"] == "smtp"


def test_connector_ca_configured_but_no_client_certificate_needs_auth(
    start_gateway: Any,
    connect: Any,
    tenant: Any,
    connector_ca: TestCA,
    credential: tuple[str, str, str],
) -> None:
    gateway = start_gateway(smtp_connector_tenant=tenant.id, smtp_connector_client_ca=connector_ca.ca_file)
    client = connect(gateway)
    assert client.mail(SENDER)[0] == 530
    assert auth_plain(client, credential[1], credential[2])[0] == 235
    assert client.mail(SENDER)[0] == 250


def test_client_certificate_from_another_ca_never_relays(
    start_gateway: Any,
    connect: Any,
    services: Services,
    tenant: Any,
    connector_ca: TestCA,
    server_ca: TestCA,
) -> None:
    gateway = start_gateway(smtp_connector_tenant=tenant.id, smtp_connector_client_ca=connector_ca.ca_file)
    try:
        client = connect(gateway, client_cert=server_ca.issue("intruder.example"))
        code, _ = client.mail(SENDER)
    except (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError):
        code = None  # the handshake refused the certificate
    assert code in (None, 530)
    assert stored_ids(services, tenant) == []


# -- limits and validation ------------------------------------------------------------------------


def test_oversized_message_is_refused_with_552_and_nothing_stored(
    start_gateway: Any,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    gateway = start_gateway(smtp_max_message_bytes=2048)
    client = authenticated(connect, gateway, credential)
    assert client.esmtp_features["size"] == "2048"
    # RFC 1870: a declared SIZE over the limit is refused at MAIL ...
    code, reply = client.mail(SENDER, ["SIZE=4096"])
    assert (code, reply[:5]) == (552, b"5.3.4")
    # ... and undeclared excess at the end of DATA.
    code, reply = send(client, message(body="x" * 70 + ("\r\n" + "x" * 70) * 60))
    assert (code, reply[:5]) == (552, b"5.3.4")
    assert stored_ids(services, tenant) == []
    assert client.noop()[0] == 250


def test_bad_recipient_syntax_is_refused_with_553(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str]
) -> None:
    client = authenticated(connect, gateway, credential)
    assert client.mail(SENDER)[0] == 250
    for bad in ("no-at-sign", "user@[192.0.2.1]", "user@-bad-.example"):
        code, reply = client.rcpt(bad)
        assert (code, reply[:5]) == (553, b"5.1.3"), bad


def test_recipients_beyond_the_limit_get_452_and_the_rest_are_kept(
    start_gateway: Any,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    gateway = start_gateway(max_recipients=2)
    client = authenticated(connect, gateway, credential)
    assert client.mail(SENDER)[0] == 250
    assert client.rcpt("a@example.org")[0] == 250
    assert client.rcpt("b@example.org")[0] == 250
    code, reply = client.rcpt("c@example.org")
    assert (code, reply[:5]) == (452, b"4.5.3")
    message_id = queued_id(*client.data(message()))
    stored = message_body(services.messages.get(tenant.principal, message_id))
    assert sorted(r["email"] for r in stored["recipients"]) == ["a@example.org", "b@example.org"]


def test_unverified_envelope_sender_is_refused_with_550_at_mail(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str]
) -> None:
    client = authenticated(connect, gateway, credential)
    code, reply = client.mail("someone@unverified.example")
    assert (code, reply[:5]) == (550, b"5.7.1")


def test_unverified_from_header_is_refused_with_550_and_nothing_stored(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = authenticated(connect, gateway, credential)
    code, reply = send(client, message(sender="billing@unverified.example"))
    assert (code, reply[:5]) == (550, b"5.7.1")
    assert b"unverified.example is not a verified sender domain" in reply
    assert stored_ids(services, tenant) == []
    assert gateway.rejections["sender_not_authorized"] == 1


def test_message_without_from_header_is_refused_with_554_and_nothing_stored(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = authenticated(connect, gateway, credential)
    code, reply = send(client, message(with_from=False))
    assert (code, reply) == (554, b"5.6.0 message: has no From header")
    assert stored_ids(services, tenant) == []


def test_unexpected_failure_is_a_temporary_451_and_nothing_stored(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away: patient@example.org")

    # Sealing fails while the message is being prepared for its commit.
    monkeypatch.setattr(services.messages.keyring, "seal", broken)
    client = authenticated(connect, gateway, credential)
    code, reply = send(client, message())
    assert (code, reply[:5]) == (451, b"4.3.0")
    assert b"patient" not in reply
    monkeypatch.undo()
    assert stored_ids(services, tenant) == []


# -- content ------------------------------------------------------------------------------------


def test_smtputf8_message_to_an_idn_address_is_accepted(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = authenticated(connect, gateway, credential)
    rcpt = "pätient@bücher.example"
    raw = message(to=rcpt, subject="Befund für Sie", body="Grüße aus der Praxis.")
    message_id = queued_id(*send(client, raw, rcpts=(rcpt,), mail_options=("SMTPUTF8",)))
    stored = message_body(services.messages.get(tenant.principal, message_id))
    (stored_rcpt,) = [r["email"] for r in stored["recipients"]]
    local, _, domain = stored_rcpt.rpartition("@")
    # The UTF-8 local part is kept; the domain may be stored as U-label or A-label.
    assert local == "pätient"
    assert idna.decode(domain) == "bücher.example"
    content = services.messages.content(tenant.principal, message_id)
    assert content.subject == "Befund für Sie"
    assert "Grüße aus der Praxis." in content.text


def test_message_without_message_id_gets_one(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = authenticated(connect, gateway, credential)
    message_id = queued_id(*send(client, message(message_id=None)))
    header = message_body(services.messages.get(tenant.principal, message_id))["message_id_header"]
    assert re.fullmatch(r"<[^<>@\s]+@sealmail\.localhost>", header), header


def test_stored_content_has_the_subject_and_body_sent(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    client = authenticated(connect, gateway, credential)
    # A leading dot exercises RFC 5321 §4.5.2 transparency on both sides.
    body = "Your results are ready.\r\n.This line starts with a dot.\r\nBye."
    message_id = queued_id(*send(client, message(subject="Results", body=body)))
    content = services.messages.content(tenant.principal, message_id)
    assert content.subject == "Results"
    assert content.from_.endswith(SENDER) or SENDER in content.from_
    assert content.text.replace("\r\n", "\n").strip() == body.replace("\r\n", "\n")


def test_smtp_and_api_submissions_have_the_same_shape(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    raw = message(message_id="<same-shape@clinic.example>")
    rcpts = (EXTERNAL, "nurse@example.net")
    client = authenticated(connect, gateway, credential)
    smtp_id = queued_id(*send(client, raw, rcpts=rcpts))

    submission = submission_from_raw(
        raw,
        SENDER,
        tuple(parse_address(r, "rcpt") for r in rcpts),
        source="api",
        message_id_domain=services.settings.smtp_hostname,
        stream=Stream.TRANSACTIONAL,
        limits=intake_limits(services.settings),
    )
    api_id = services.messages.submit(tenant.principal, submission)[0].id

    def shape(message_id: str) -> dict[str, Any]:
        stored = message_body(services.messages.get(tenant.principal, message_id))
        events = services.messages.list_events(tenant.principal, message_id=message_id).data
        return {
            "message": {
                k: stored[k]
                for k in (
                    "stream",
                    "from",
                    "mail_from",
                    "message_id_header",
                    "size",
                    "tls_policy",
                    "tags",
                    "metadata",
                    "status",
                )
            },
            "recipients": sorted((r["email"], r["kind"], r["status"]) for r in stored["recipients"]),
            "events": sorted((e["type"], e["recipient"], e["data"]["stream"]) for e in events),
            "content": dataclasses.replace(services.messages.content(tenant.principal, message_id), id=""),
        }

    assert shape(smtp_id) == shape(api_id)
    sources = {message_body(services.messages.get(tenant.principal, i))["source"] for i in (smtp_id, api_id)}
    assert sources == {"smtp", "api"}


def test_failure_during_mail_is_a_temporary_451_without_details(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> set[str]:
        raise RuntimeError("connection to doctor@clinic.example's database lost")

    monkeypatch.setattr(services.tenancy, "verified_domains", broken)
    client = authenticated(connect, gateway, credential)
    code, reply = client.mail(SENDER)
    assert (code, reply[:5]) == (451, b"4.3.0")
    assert b"doctor" not in reply
    assert b"RuntimeError" not in reply


def test_stop_waits_for_a_message_being_stored_and_the_client_gets_its_250(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storing, release = threading.Event(), threading.Event()
    real_seal = services.messages.keyring.seal

    def slow_seal(*args: Any, **kwargs: Any) -> Any:
        storing.set()
        assert release.wait(10), "test never released the message being stored"
        return real_seal(*args, **kwargs)

    # The message is on its way to its commit (being sealed) when stop() is called.
    monkeypatch.setattr(services.messages.keyring, "seal", slow_seal)
    client = authenticated(connect, gateway, credential)
    replies: list[tuple[int, bytes]] = []
    sender = threading.Thread(target=lambda: replies.append(send(client, message())))
    sender.start()
    assert storing.wait(10), "the gateway never called accept()"
    stopper = threading.Thread(target=gateway.stop)
    stopper.start()
    # stop() closes the listener first, then waits for the running accept().
    wait_until(lambda: refuses_connections(gateway.port), message="listener still open")
    assert stopper.is_alive()
    release.set()
    stopper.join(10)
    sender.join(10)
    assert not stopper.is_alive()
    assert not sender.is_alive()
    message_id = queued_id(*replies[0])
    assert message_body(services.messages.get(tenant.principal, message_id))["status"] == "queued"


def test_dlp_block_is_a_permanent_554_naming_the_detector_and_stores_nothing(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: Any,
) -> None:
    services.tenancy.update_settings(tenant.id, {"dlp": {"actions": {"ssn": "block"}}}, actor="test")
    services.screener.forget(tenant.id)
    client = authenticated(connect, gateway, credential)
    code, reply = send(client, message(body="Patient SSN 123-45-6780, please call."))
    assert code == 554
    assert b"5.7.1" in reply and b"ssn in text" in reply
    assert b"123-45-6780" not in reply
    assert stored_ids(services, tenant) == []
