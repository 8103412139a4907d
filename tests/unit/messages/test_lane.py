"""The intake lane: messages prepared in one thread, acknowledged only once committed."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tests.support.waiting import wait_until_async

from sealmail.messages import lane as lane_module
from sealmail.messages.group_commit import GroupCommit, Pending
from sealmail.messages.lane import Lane


def _item(n: int, bad: bool = False) -> Pending:
    return Pending(
        message={"n": n, "bad": bad}, recipients=[], tags=[], events=[], audit=[], idempotency=None
    )


class HeldWriter:
    """A batch writer that blocks until released, recording each batch's message numbers."""

    def __init__(self) -> None:
        self.writing, self.release = threading.Event(), threading.Event()
        self.written: list[list[int]] = []

    def __call__(self, batch: list[Pending]) -> None:
        self.writing.set()
        self.release.wait(10)
        self.written.append(sorted(p.message["n"] for p in batch))


def test_a_message_is_acknowledged_only_after_its_batch_is_written() -> None:
    writer = HeldWriter()
    lane = Lane(GroupCommit(writer, company=0.0))

    async def main() -> None:
        job = lane.submit(lambda: _item(1))
        await wait_until_async(writer.writing.is_set, message="the committer writes the batch")
        # The writer is held, so the commit cannot have ended: an answer now would be early.
        assert not job.future.done(), "acknowledged before the commit"
        writer.release.set()
        await job.future
        assert job.item is not None and job.item.message["n"] == 1

    asyncio.run(main())
    assert writer.written == [[1]]


def test_messages_that_arrive_during_a_commit_are_prepared_meanwhile_and_committed_after() -> None:
    writer = HeldWriter()
    lane = Lane(GroupCommit(writer, company=0.0), threads=2)

    async def main() -> None:
        first = lane.submit(lambda: _item(0))
        await wait_until_async(writer.writing.is_set, message="the first batch is being written")
        second = lane.submit(lambda: _item(1))
        # The second thread prepares it while the first batch still commits ...
        await wait_until_async(lambda: second.item is not None, message="prepared during the commit")
        assert not first.future.done() and not second.future.done()
        writer.release.set()
        await asyncio.gather(first.future, second.future)

    asyncio.run(main())
    # ... and it is written after it, in a batch of its own.
    assert writer.written == [[0], [1]]


def test_one_thread_prepares_what_arrived_during_its_commit_as_the_next_batch() -> None:
    writer = HeldWriter()
    lane = Lane(GroupCommit(writer, company=0.0), threads=1)

    async def main() -> None:
        first = lane.submit(lambda: _item(0))
        await wait_until_async(writer.writing.is_set, message="the first batch is being written")
        rest = [lane.submit(lambda n=n: _item(n)) for n in (1, 2, 3)]
        writer.release.set()
        await asyncio.gather(first.future, *(j.future for j in rest))

    asyncio.run(main())
    assert writer.written == [[0], [1, 2, 3]]


def test_a_message_that_cannot_be_prepared_fails_alone() -> None:
    written: list[list[int]] = []
    lane = Lane(GroupCommit(lambda batch: written.append([p.message["n"] for p in batch]), company=0.0))

    def refused() -> Pending:
        raise ValueError("refused")

    async def main() -> list[str]:
        jobs = [lane.submit(lambda: _item(1)), lane.submit(refused), lane.submit(lambda: _item(3))]
        results = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
        return [type(r).__name__ for r in results]

    assert asyncio.run(main()) == ["NoneType", "ValueError", "NoneType"]
    assert sorted(n for batch in written for n in batch) == [1, 3]


def test_a_failed_batch_fails_each_message_with_its_own_error() -> None:
    def write(batch: list[Pending]) -> None:
        if any(p.message["bad"] for p in batch):
            raise ValueError("bad")

    lane = Lane(GroupCommit(write, company=0.0))

    async def main() -> list[str]:
        jobs = [lane.submit(lambda n=n: _item(n, bad=n == 2)) for n in (1, 2, 3)]
        results = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
        return [type(r).__name__ for r in results]

    assert asyncio.run(main()) == ["NoneType", "ValueError", "NoneType"]


def test_the_lane_thread_ends_when_idle_and_the_next_message_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lane_module, "IDLE_SECONDS", 0.05)
    written: list[int] = []
    lane = Lane(GroupCommit(lambda batch: written.append(len(batch)), company=0.0))

    async def main() -> None:
        await lane.submit(lambda: _item(1)).future
        await wait_until_async(lambda: lane._threads == 0, message="the idle lane thread ended")
        await lane.submit(lambda: _item(2)).future

    asyncio.run(main())
    assert written == [1, 1]
