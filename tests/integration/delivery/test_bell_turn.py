"""One idle worker answers the queue bell; the others wait for its turn (``delivery/bell.py``).

With every idle worker listening, each commit woke them all: eight workers beside a streaming
intake split the mail a few messages each, and Sealmail's CPU per message tripled (issue 18).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from tests.integration.delivery.test_worker import Pipeline, pipeline
from tests.support.waiting import wait_until_async

from sealmail.app import build_transport, build_worker
from sealmail.delivery import worker as worker_module
from sealmail.delivery.bell import STANDBY_SECONDS, ListeningBell, bell_for
from sealmail.messages import queue
from sealmail.store import db
from sealmail.store.tables import attempts, recipients

__all__ = ["pipeline"]  # the fixture, shared with test_worker.py


def _waiting_for_turn(engine: sa.Engine) -> int:
    """Sessions of this database blocked on an advisory lock (a worker waiting for the turn)."""
    with engine.connect() as conn:
        return int(
            conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
            or 0
        )


def test_one_worker_holds_the_turn_others_wait_and_take_over_when_it_steps_aside_or_dies(
    pg_database: str | None,
) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable: the turn is a PostgreSQL advisory lock")
    engine = db.create_engine(pg_database)
    bells = [bell_for(engine) for _ in range(3)]
    assert all(isinstance(b, ListeningBell) for b in bells)
    first, second, third = (b for b in bells if isinstance(b, ListeningBell))

    async def go() -> None:
        try:
            # The turn is free: the first worker takes it and listens (nothing queued: waits out).
            assert await first.wait(None, 0.05) is True
            # Another waits for the turn at least STANDBY_SECONDS, then claims only old mail.
            started = time.monotonic()
            assert await second.wait(None, 0.05) is False
            assert time.monotonic() - started >= STANDBY_SECONDS * 0.9
            # The holder is full and steps aside: the waiting worker takes over at once.
            waiting = asyncio.ensure_future(second.wait(None, 30))
            await wait_until_async(lambda: _waiting_for_turn(engine) == 1, 10, "the second waits")
            started = time.monotonic()
            await first.step_aside()
            assert await waiting is True
            assert time.monotonic() - started < 10
            # A holder whose session ends (a killed worker) frees the turn with it.
            waiting = asyncio.ensure_future(third.wait(None, 30))
            await wait_until_async(lambda: _waiting_for_turn(engine) == 1, 10, "the third waits")
            await second.close()
            assert await waiting is True
            # The worker that stepped aside now waits for the turn like any other.
            assert await first.wait(None, 0.05) is False
        finally:
            for bell in (first, second, third):
                await bell.close()

    try:
        asyncio.run(go())
    finally:
        engine.dispose()


def test_a_patient_claim_takes_only_mail_that_has_been_due_that_long(pipeline: Pipeline) -> None:
    """What a worker waiting for the turn claims (``queue.claim_with_messages_in(patience=)``)."""
    mid = pipeline.send(["fresh@example.net"])
    engine = pipeline.services.engine
    with engine.begin() as conn:
        claimed, _ = queue.claim_with_messages_in(conn, "standby", 10, 60, patience=30)
    assert claimed == []
    with engine.begin() as conn:
        conn.execute(sa.update(recipients).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=31)))
    with engine.begin() as conn:
        claimed, msgs = queue.claim_with_messages_in(conn, "standby", 10, 60, patience=30)
    assert [c.address for c in claimed] == ["fresh@example.net"] and set(msgs) == {mid}


# SQLite's workers (one host, one file) each read its largest rowid; the turn is PostgreSQL's.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_mail_trickling_in_goes_to_the_one_worker_that_holds_the_turn(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three running workers on PostgreSQL, messages queued one commit at a time: the holder
    of the turn delivers every one; the others claim nothing younger than their patience."""
    # No message here waits that long for the holder, however loaded the machine.
    monkeypatch.setattr(worker_module, "STANDBY_PATIENCE", 300.0)
    count = 6

    async def three() -> None:
        transports = [build_transport(pipeline.settings) for _ in range(3)]
        workers = [
            build_worker(pipeline.services, t, pipeline.settings, name=f"w{i}")
            for i, t in enumerate(transports)
        ]
        stop = asyncio.Event()
        runs = [asyncio.create_task(w.run(stop)) for w in workers]
        try:
            for n in range(count):
                await asyncio.to_thread(pipeline.send, [f"r{n}@example.net"])
                await wait_until_async(
                    lambda n=n: sum(w.delivered for w in workers) == n + 1, 30, f"message {n} delivered"
                )
        finally:
            stop.set()
            await asyncio.gather(*runs)
            for t in transports:
                await t.close()

    asyncio.run(three())
    with pipeline.services.engine.connect() as conn:
        by_worker: dict[str, Any] = dict(
            conn.execute(sa.select(attempts.c.worker, sa.func.count()).group_by(attempts.c.worker)).all()
        )
    assert len(by_worker) == 1 and sum(by_worker.values()) == count, by_worker
    received = pipeline.sink.wait_for(count)
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(
        f"r{n}@example.net" for n in range(count)
    )
