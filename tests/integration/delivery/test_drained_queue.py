"""A worker whose claim came back short (the queue is drained) stops claiming at each flush and
claims again when the bell says mail was queued (issue 18: with 16 workers on one queue, the
empty claims after every 50 ms flush were most of PostgreSQL's transactions)."""

from __future__ import annotations

import asyncio
import time

from tests.integration.delivery.test_worker import Pipeline, pipeline
from tests.support.sql_log import SqlLog, sql_log
from tests.support.waiting import wait_until_async

from sealmail.app import build_transport, build_worker

__all__ = ["pipeline"]  # the fixture, imported so pytest finds it here


def test_a_drained_queue_is_claimed_when_mail_arrives_not_at_every_flush(pipeline: Pipeline) -> None:
    for i in range(6):
        pipeline.send([f"patient{i}@example.net"])
    # A poll longer than the waits below: only the bell can explain the late delivery.
    settings = pipeline.settings.model_copy(update={"worker_poll_seconds": 8.0})

    async def drain_then_one(log: SqlLog) -> None:
        transport = build_transport(settings)
        worker = build_worker(pipeline.services, transport, settings, name="drained")
        stop = asyncio.Event()
        run = asyncio.create_task(worker.run(stop))
        try:
            await wait_until_async(lambda: worker.delivered >= 6, 3.5, "six deliveries recorded")
            # One claim took all six (fewer than the batch): none at the flushes that recorded them.
            assert log.claims() == 1
            await asyncio.to_thread(pipeline.send, ["late@example.net"])
            await wait_until_async(lambda: worker.delivered >= 7, 4, "the late message delivered")
            assert log.claims() == 2
        finally:
            stop.set()
            await run
            await transport.close()

    with sql_log(pipeline.services.engine) as log:
        asyncio.run(drain_then_one(log))
    assert len(pipeline.sink.wait_for(7)) == 7


def test_a_worker_out_of_room_flushes_a_few_outcomes_at_once(pipeline: Pipeline) -> None:
    """Outcomes wait for company (``pacing.flush_due``) only while the worker can still claim:
    one whose batch is all in flight waits on the flush to free room, so it gets it now."""
    settings = pipeline.settings.model_copy(update={"worker_batch_size": 2, "worker_concurrency": 2})
    worker = build_worker(pipeline.services, build_transport(settings), settings, name="full")
    worker._pending.append(object())  # type: ignore[arg-type]  # only counted here
    worker._oldest = time.monotonic()
    assert not worker._flush_now()  # one young outcome, room to claim: it waits
    worker._in_flight = 2
    assert worker._flush_now()  # the batch is all in flight: the flush frees room
