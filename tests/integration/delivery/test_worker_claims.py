"""The worker's claims: what a claim costs the database besides the claim itself."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from tests.integration.delivery.test_worker import Pipeline, pipeline

__all__ = ["pipeline"]  # the fixture, shared with test_worker.py


def test_a_claim_without_marketing_mail_opens_no_screening_transaction(pipeline: Pipeline) -> None:
    """The claim gate (``decide_send``) concerns marketing mail only: for other mail no
    transaction is opened for it (on SQLite a write transaction, the write lock, per claim)."""
    for i in range(3):
        pipeline.send([f"r{i}@example.net"])
    transactions: list[list[str]] = []
    open_: dict[int, list[str]] = {}

    def statement(conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        open_.setdefault(id(conn), []).append(sql)

    def commit(conn: Any) -> None:
        transactions.append(open_.pop(id(conn), []))

    engine = pipeline.services.engine
    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        assert pipeline.run_worker() == 3
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)
    assert sorted(r for m in pipeline.sink.wait_for(3) for r in m.rcpt_tos) == [
        f"r{i}@example.net" for i in range(3)
    ]
    assert transactions and all(transactions), "a transaction that ran no statement"
