"""Appending guesses the audit head this process wrote last; a wrong guess still chains."""

from __future__ import annotations

from sealmail import audit
from sealmail.app import Services
from sealmail.audit import AuditAction


def _append(services: Services, n: int) -> None:
    for i in range(n):
        with services.engine.begin() as conn:
            audit.append(conn, action=AuditAction.CONFIG_CHANGED, actor="test", details={"i": i})


def test_a_stale_or_missing_guess_still_extends_the_chain(services: Services) -> None:
    _append(services, 2)
    database = str(services.engine.url)
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
