"""REQUIRETLS and "TLS-Required: No" (RFC 8689) at the SMTP submission gateway.

A real smtplib client over STARTTLS (the test CA) against the running gateway; what is
stored is read back from the database, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from tests.integration.intake.test_smtp_gateway import (
    EXTERNAL,
    SENDER,
    audit_rows,
    auth_plain,
    message,
    queued_id,
    send,
)

from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.intake.smtp import SmtpGateway
from sealmail.store.tables import messages


def _client(connect: Any, gateway: SmtpGateway, credential: tuple[str, str, str]) -> Any:
    client = connect(gateway)
    code, reply = auth_plain(client, credential[1], credential[2])
    assert code == 235, reply
    return client


def _tls_required(services: Services, message_id: str) -> str | None:
    with services.engine.connect() as conn:
        return conn.execute(
            sa.select(messages.c.tls_required).where(messages.c.id == message_id)
        ).scalar_one()


def test_requiretls_is_offered_only_after_starttls(gateway: SmtpGateway, connect: Any) -> None:
    plain = connect(gateway, starttls=False)
    assert not plain.has_extn("requiretls")
    secured = connect(gateway)
    assert secured.has_extn("requiretls")


def test_mail_from_requiretls_is_accepted_and_stored_on_the_message(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], services: Services
) -> None:
    client = _client(connect, gateway, credential)
    code, reply = send(client, message(), mail_options=("REQUIRETLS",))
    mid = queued_id(code, reply)

    assert _tls_required(services, mid) == "requiretls"
    [accepted] = [r for r in audit_rows(services, AuditAction.MESSAGE_ACCEPTED) if r["target"] == mid]
    assert accepted["details"]["tls_required"] == "requiretls"


def test_without_the_parameter_nothing_is_stored(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], services: Services
) -> None:
    client = _client(connect, gateway, credential)
    mid = queued_id(*send(client, message()))
    assert _tls_required(services, mid) is None


def test_requiretls_with_a_value_or_on_rcpt_is_refused_with_555(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str]
) -> None:
    client = _client(connect, gateway, credential)
    code, _ = client.mail(SENDER, ["REQUIRETLS=yes"])
    assert code == 555
    code, reply = client.mail(SENDER, ["REQUIRETLS"])
    assert code == 250, reply
    code, _ = client.rcpt(EXTERNAL, ["REQUIRETLS"])
    assert code == 555


def test_tls_required_no_is_stored_and_audited(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], services: Services
) -> None:
    raw = message().replace(b"MIME-Version: 1.0\r\n", b"TLS-Required: No\r\nMIME-Version: 1.0\r\n")
    client = _client(connect, gateway, credential)
    mid = queued_id(*send(client, raw))

    assert _tls_required(services, mid) == "no"
    [relaxed] = [
        r for r in audit_rows(services, AuditAction.MESSAGE_TLS_RELAXATION_REQUESTED) if r["target"] == mid
    ]
    assert relaxed["details"]["header"] == "TLS-Required: No"
    assert relaxed["actor"] == credential[0]


def test_requiretls_outranks_a_tls_required_no_header(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], services: Services
) -> None:
    # RFC 8689 §4.1: with REQUIRETLS on MAIL the header field is ignored.
    raw = message().replace(b"MIME-Version: 1.0\r\n", b"TLS-Required: No\r\nMIME-Version: 1.0\r\n")
    client = _client(connect, gateway, credential)
    mid = queued_id(*send(client, raw, mail_options=("REQUIRETLS",)))

    assert _tls_required(services, mid) == "requiretls"
    assert not [
        r for r in audit_rows(services, AuditAction.MESSAGE_TLS_RELAXATION_REQUESTED) if r["target"] == mid
    ]
