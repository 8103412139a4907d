"""The gateway's per-message path reads no tenant, domain or credential rows (issue 18).

AUTH on a second connection with the same credential, MAIL FROM's sender-domain check and
the harvest opt-in all answer from Tenancy's short caches; every message is still stored.
"""

from __future__ import annotations

from typing import Any

from tests.integration.intake.test_smtp_gateway import (
    auth_plain,
    authenticated,
    message,
    queued_id,
    send,
    stored_ids,
)
from tests.support.sql_log import sql_log

from sealmail.app import Services
from sealmail.intake.smtp import SmtpGateway


def test_a_stream_of_messages_reads_no_tenant_domain_or_credential_rows(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], services: Services, tenant: Any
) -> None:
    first = authenticated(connect, gateway, credential)
    warm = queued_id(*send(first, message()))
    with sql_log(services.engine) as log:
        ids = [queued_id(*send(first, message())) for _ in range(3)]
        second = authenticated(connect, gateway, credential)
        ids.append(queued_id(*send(second, message())))
    assert len(set(ids)) == 4
    assert set(stored_ids(services, tenant)) == {warm, *ids}
    assert log.reads_of("smtp_credentials") == 0
    assert log.reads_of("sender_domains") == 0
    assert log.reads_of("tenants") == 0


def test_an_unverified_sender_domain_is_still_refused_at_mail_from(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str]
) -> None:
    client = authenticated(connect, gateway, credential)
    assert queued_id(*send(client, message()))
    code, reply = client.mail("doctor@unverified.example")
    assert code == 550, reply
    assert b"unverified.example is not a verified sender domain" in reply


def test_a_cached_credential_is_still_throttled_after_failures(
    start_gateway: Any, connect: Any, credential: tuple[str, str, str]
) -> None:
    gateway = start_gateway(auth_failure_limit=2)
    authenticated(connect, gateway, credential).close()  # verified, so now in memory
    guesser = connect(gateway)
    assert auth_plain(guesser, credential[1], "wrong-1")[0] == 535
    assert auth_plain(guesser, credential[1], "wrong-2")[0] == 535
    guesser.close()
    # The throttle answers before the cache is consulted: even the right password waits.
    code, reply = auth_plain(connect(gateway), credential[1], credential[2])
    assert (code, reply[:5]) == (454, b"4.7.0")
