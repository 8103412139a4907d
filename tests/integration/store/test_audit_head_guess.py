"""Appending guesses the audit head this process wrote last; a wrong guess still chains."""

from __future__ import annotations

import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.support.sql_log import sql_log

from sealmail import audit
from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import audit_log


def _append(services: Services, n: int) -> None:
    for i in range(n):
        with services.engine.begin() as conn:
            audit.append(conn, action=AuditAction.CONFIG_CHANGED, actor="test", details={"i": i})


def test_a_stale_or_missing_guess_still_extends_the_chain(services: Services) -> None:
    _append(services, 2)
    database = services.engine.url
    # Another process appended since (or our transaction rolled back): the guess is wrong.
    audit._last_heads[database] = (1, "f" * 64)
    _append(services, 2)
    audit._last_heads.pop(database, None)  # a fresh process
    _append(services, 1)
    result = audit.verify(services.engine)
    assert result.ok and result.checked >= 5


def test_a_rolled_back_append_leaves_no_trace(services: Services) -> None:
    _append(services, 1)
    conn = services.engine.connect()
    with conn.begin() as txn:
        audit.append(conn, action=AuditAction.CONFIG_CHANGED, actor="test")
        txn.rollback()
    conn.close()
    _append(services, 1)  # the guess is the rolled-back head
    assert audit.verify(services.engine).ok


def _accept(services: Services, tenant: TenantFixture) -> None:
    body = MessageIn.model_validate(
        {"from": "noreply@clinic.example", "to": ["a@example.net"], "subject": "s", "text": "t"}
    )
    services.messages.submit(tenant.principal, compose.from_message(body, "sealmail.test", 10))


def test_accepted_messages_chain_whatever_the_guess(services: Services, tenant: TenantFixture) -> None:
    """An intake batch appends in its pipeline (PostgreSQL): the head's move is checked there,
    and a wrong guess falls back to reading the head after it, in the same transaction."""
    _accept(services, tenant)
    with sql_log(services.engine) as log:
        _accept(services, tenant)  # the guess is right: the head is moved, never read
    assert log.reads_of("audit_head") == 0
    audit._last_heads[services.engine.url] = (1, "f" * 64)
    _accept(services, tenant)  # wrong
    audit._last_heads.pop(services.engine.url, None)
    _accept(services, tenant)  # none
    assert audit.verify(services.engine).ok
    with services.engine.connect() as conn:
        accepted = conn.execute(
            sa.select(sa.func.count()).where(audit_log.c.action == str(AuditAction.MESSAGE_ACCEPTED))
        ).scalar_one()
    assert accepted == 4
