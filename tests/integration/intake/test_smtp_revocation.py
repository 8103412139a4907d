"""An SMTP credential revoked by another process ends an already-authenticated connection's
sending within 5 s: each ``MAIL`` re-checks it (at most ``CACHE_SECONDS`` old), so a client
that keeps one connection open cannot go on submitting with a dead credential.  SQLite file
and PostgreSQL, the revocation made through a second ``Services`` on the same database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.intake.test_smtp_gateway import (
    SENDER,
    authenticated,
    message,
    queued_id,
    send,
)
from tests.support.waiting import wait_until

from sealmail.app import Services, build_services
from sealmail.config import Settings
from sealmail.intake.smtp import SmtpGateway


@pytest.fixture
def elsewhere(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)  # another process's objects: its own engine and caches
    yield svc
    svc.close()


def test_a_connection_authenticated_before_the_revocation_stops_within_5_s(
    gateway: SmtpGateway, connect: Any, credential: tuple[str, str, str], elsewhere: Services, tenant: Any
) -> None:
    client = authenticated(connect, gateway, credential)
    queued_id(*send(client, message()))  # sending works, and the credential is now known live
    elsewhere.tenancy.revoke_smtp_credential(tenant.id, credential[0], actor="test")

    def refused() -> bool:
        code, reply = client.docmd("MAIL", f"FROM:<{SENDER}>")
        if code == 250:
            client.rset()
            return False
        assert (code, reply[:5]) == (535, b"5.7.8"), reply
        return True

    wait_until(refused, 5.0, "the revoked credential still sent on its open connection after 5 s")
    assert gateway.rejections["credential_revoked"] >= 1
    client.rset()
    code, _ = client.docmd("MAIL", f"FROM:<{SENDER}>")
    assert code == 535  # and stays refused
