"""A worker still delivering claims mail queued meanwhile in one go (``pacing.CLAIM_GATHER_SECONDS``).

The bell rings at every intake commit; a claim a commit cost the worker a transaction per two or
three messages on PostgreSQL (issue 18).  An idle worker still claims at once.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from tests.integration.delivery.test_worker import Pipeline, pipeline
from tests.support.waiting import wait_until_async

from sealmail.app import build_transport, build_worker
from sealmail.delivery import worker as worker_module
from sealmail.domain.statuses import RecipientStatus
from sealmail.store.tables import recipients

__all__ = ["pipeline"]  # the fixture, shared with test_worker.py


def _claims(pipeline: Pipeline) -> tuple[int, int]:
    """(recipients being delivered, claims they came in): a claim gives all its rows one lease."""
    with pipeline.services.engine.connect() as conn:
        leases = conn.execute(
            sa.select(recipients.c.lease_until).where(recipients.c.status == RecipientStatus.DELIVERING)
        ).scalars()
        seen = list(leases)
    return len(seen), len(set(seen))


def test_mail_queued_while_a_worker_delivers_is_claimed_together(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Longer than sending the rest takes on a loaded machine, so the count below is exact.
    monkeypatch.setattr(worker_module, "CLAIM_GATHER_SECONDS", 1.0)
    later = 5

    async def run() -> None:
        transport = build_transport(pipeline.settings)
        worker = build_worker(pipeline.services, transport, pipeline.settings, name="w1")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            # Idle: the first message is claimed at once, and its delivery stays in flight.
            await asyncio.to_thread(pipeline.send, ["hold0@example.net"])
            await wait_until_async(lambda: _claims(pipeline) == (1, 1), 10, "first message claimed")
            for n in range(1, later + 1):
                await asyncio.to_thread(pipeline.send, [f"hold{n}@example.net"])
            await wait_until_async(lambda: _claims(pipeline)[0] == later + 1, 15, "all claimed")
            assert _claims(pipeline) == (later + 1, 2)
            pipeline.sink.release()
            await wait_until_async(lambda: worker.delivered == later + 1, 15, "all delivered")
        finally:
            pipeline.sink.release()
            stop.set()
            await task
            await transport.close()

    asyncio.run(run())
    received = pipeline.sink.wait_for(later + 1)
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(
        f"hold{n}@example.net" for n in range(later + 1)
    )
