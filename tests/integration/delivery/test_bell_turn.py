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

from sealmail.app import Services, build_transport, build_worker
from sealmail.delivery import worker as worker_module
from sealmail.delivery.bell import STANDBY_SECONDS, ListeningBell, RowidBell, bell_for
from sealmail.messages import queue
from sealmail.store.tables import attempts, recipients

__all__ = ["pipeline"]  # the fixture, shared with test_worker.py


async def _channels(bell: ListeningBell) -> int:
    """How many channels the bell's own session listens on."""
    conn = bell._conn
    assert conn is not None
    cur = await conn.execute("SELECT count(*) FROM pg_listening_channels()")
    row = await cur.fetchone()
    assert isinstance(row, tuple)
    return int(row[0])


def test_one_worker_holds_the_turn_others_wait_and_take_over_when_it_steps_aside_or_dies(
    services: Services,
) -> None:
    bells = [bell_for(services.engine) for _ in range(3)]
    assert all(isinstance(b, ListeningBell | RowidBell) for b in bells)
    first, second, third = (b for b in bells if isinstance(b, ListeningBell | RowidBell))

    async def go() -> None:
        try:
            # The turn is free: the first worker takes it and listens (nothing queued: waits out).
            assert await first.wait(first.mark(), 0.05) is True
            # Another waits for the turn at least STANDBY_SECONDS, then claims only old mail.
            started = time.monotonic()
            assert await second.wait(second.mark(), 0.05) is False
            assert time.monotonic() - started >= STANDBY_SECONDS * 0.9
            if isinstance(first, ListeningBell) and isinstance(second, ListeningBell):
                # Only the holder listens: a waiting worker gathers no notification per commit.
                assert await _channels(first) == 1 and await _channels(second) == 0
            # The holder is full and steps aside: the waiting worker takes over at once.
            waiting = asyncio.ensure_future(second.wait(second.mark(), 30))
            await wait_until_async(lambda: second.waiting_for_turn, 10, "the second waits for the turn")
            started = time.monotonic()
            await first.step_aside()
            assert await waiting is True
            assert time.monotonic() - started < 10
            # A holder that ends (a killed worker's session or process) frees the turn with it.
            waiting = asyncio.ensure_future(third.wait(third.mark(), 30))
            await wait_until_async(lambda: third.waiting_for_turn, 10, "the third waits for the turn")
            await second.close()
            assert await waiting is True
            # The worker that stepped aside now waits for the turn like any other.
            assert await first.wait(first.mark(), 0.05) is False
        finally:
            for bell in (first, second, third):
                await bell.close()

    asyncio.run(go())


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


def test_mail_trickling_in_goes_to_the_one_worker_that_holds_the_turn(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three running workers, messages queued one commit at a time: the holder
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
            # Past their first claims (which take whatever is due, as a starting worker
            # should): one holds the turn, the other two wait for it.
            bells = [w.bell for w in workers]
            await wait_until_async(
                lambda: sum(bool(getattr(b, "waiting_for_turn", False)) for b in bells) == 2,
                30,
                "two workers waiting for the turn",
            )
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
