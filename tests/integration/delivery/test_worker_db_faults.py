"""A running worker whose database refuses some claims and flushes (a restarted PostgreSQL,
a dropped connection) keeps delivering and recording: nobody lost, nobody delivered twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from tests.integration.delivery.test_worker import Pipeline, pipeline  # noqa: F401 — the fixture
from tests.support.waiting import wait_until_async

from sealmail.app import build_transport, build_worker
from sealmail.delivery.pacing import FLUSH_RETRY_MAX, FLUSH_SECONDS, flush_delay


def test_flushes_back_off_while_refused_and_never_wait_longer_than_the_cap() -> None:
    assert flush_delay(0) == FLUSH_SECONDS
    assert [flush_delay(n) for n in range(1, 4)] == [2 * FLUSH_SECONDS, 4 * FLUSH_SECONDS, 8 * FLUSH_SECONDS]
    assert flush_delay(50) == FLUSH_RETRY_MAX


@pytest.mark.hipaa("164.312(c)(1)")
def test_refused_claims_and_flushes_are_retried_and_every_recipient_is_delivered_once(
    pipeline: Pipeline,  # noqa: F811 — the fixture imported above
) -> None:
    ids = [pipeline.send([f"r{i}@example.net"]) for i in range(20)]
    refused = {"record": 0, "claim": 0}

    def refuse(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        # The record's lease-checked UPDATE and the claim's UPDATE … RETURNING.
        kind = "record" if "UPDATE recipients" in sql and "last_reason" in sql else None
        if kind is None and sql.startswith("UPDATE recipients SET status") and "RETURNING" in sql:
            kind = "claim"
        if kind is not None and refused[kind] < 3:
            refused[kind] += 1
            raise sa.exc.OperationalError(sql[:40], {}, Exception("server closed the connection"))

    engine = pipeline.services.engine
    sa.event.listen(engine, "before_cursor_execute", refuse)

    async def run() -> int:
        settings = pipeline.settings.model_copy(update={"worker_batch_size": 4, "worker_concurrency": 2})
        transport = build_transport(settings)
        worker = build_worker(pipeline.services, transport, settings, name="w-faults")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await wait_until_async(lambda: worker.delivered >= 20, 60, "20 recorded deliveries")
        finally:
            stop.set()
            await task
            await transport.close()
        return worker.delivered

    try:
        delivered = asyncio.run(run())
    finally:
        sa.event.remove(engine, "before_cursor_execute", refuse)
    assert refused == {"record": 3, "claim": 3}
    assert delivered == 20
    received = pipeline.sink.wait_for(20)
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(f"r{i}@example.net" for i in range(20))
    for mid in ids:
        [rcpt] = pipeline.message(mid)["recipients"]
        assert rcpt["status"] == "delivered" and len(rcpt["attempts"]) == 1
