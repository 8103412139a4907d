"""The group commit's leader waits, bounded, for callers that announced themselves."""

from __future__ import annotations

import asyncio
import threading

from tests.support.waiting import wait_until, wait_until_async, yield_to_loop

from sealmail.messages.group_commit import GroupCommit, Pending


def _item() -> Pending:
    return Pending(message={}, recipients=[], tags=[], events=[], audit=[], idempotency=None)


def _announced_thread(commits: GroupCommit, may_submit: threading.Event) -> threading.Thread:
    """A caller in a thread that announced itself and submits once ``may_submit`` is set."""

    def announced() -> None:
        with commits.expect() as submit:
            may_submit.wait()
            submit(_item())

    other = threading.Thread(target=announced)
    other.start()
    wait_until(lambda: commits._coming == 1, message="the other caller announced itself")
    return other


def test_a_leader_takes_an_announced_caller_into_its_batch() -> None:
    batches: list[int] = []
    commits = GroupCommit(lambda batch: batches.append(len(batch)), company=30.0)
    may_submit = threading.Event()
    other = _announced_thread(commits, may_submit)
    leader = threading.Thread(target=commits.submit, args=(_item(),))
    leader.start()
    wait_until(lambda: len(commits._queue) == 1, message="the leader queued and waits")
    assert batches == []
    may_submit.set()
    leader.join()
    other.join()
    assert batches == [2]


def test_a_caller_that_gives_up_stops_the_wait() -> None:
    batches: list[int] = []
    commits = GroupCommit(lambda batch: batches.append(len(batch)), company=30.0)
    give_up = threading.Event()

    def refused() -> None:
        with commits.expect():
            give_up.wait()  # e.g. DLP blocks the message: nothing is submitted

    other = threading.Thread(target=refused)
    other.start()
    wait_until(lambda: commits._coming == 1, message="the other caller announced itself")
    leader = threading.Thread(target=commits.submit, args=(_item(),))
    leader.start()
    wait_until(lambda: len(commits._queue) == 1, message="the leader queued and waits")
    give_up.set()
    leader.join()
    other.join()
    assert batches == [1] and commits._coming == 0


def test_the_wait_is_bounded() -> None:
    batches: list[int] = []
    commits = GroupCommit(lambda batch: batches.append(len(batch)), company=0.01)
    with commits.expect():
        commits.submit(_item())  # another caller's announcement never turns into a submit
    assert batches == [1]


# -- callers on an event loop ------------------------------------------------------------------


def test_event_loop_callers_share_a_batch_and_return_only_after_it_is_written() -> None:
    written: list[int] = []
    commits = GroupCommit(lambda batch: written.append(len(batch)), company=30.0)

    async def main() -> None:
        async def one() -> None:
            with commits.expect() as arrival:
                # All three announced before the first queues (and its leader looks).
                await wait_until_async(lambda: commits._coming + len(commits._queue) == 3)
                await arrival.committed(_item())
            assert written, "returned before its batch was written"

        await asyncio.gather(*(one() for _ in range(3)))

    asyncio.run(main())
    assert written == [3]  # the leader waited for the two announced on their way


def test_an_event_loop_caller_and_a_thread_share_a_batch() -> None:
    written: list[int] = []
    commits = GroupCommit(lambda batch: written.append(len(batch)), company=30.0)
    may_submit = threading.Event()
    other = _announced_thread(commits, may_submit)

    async def main() -> None:
        waiting = asyncio.ensure_future(commits.commit(_item()))
        await wait_until_async(lambda: len(commits._queue) == 1, message="queued, the committer waits")
        may_submit.set()
        await waiting

    asyncio.run(main())
    other.join()
    assert written == [2]


def test_a_failed_batch_raises_in_each_event_loop_caller_its_own_error() -> None:
    def write(batch: list[Pending]) -> None:
        if any(p.message.get("bad") for p in batch):
            raise ValueError("bad")

    commits = GroupCommit(write, company=30.0)

    async def one(bad: bool) -> str:
        with commits.expect() as arrival:
            try:
                await arrival.committed(Pending({"bad": bad}, [], [], [], [], None))
            except ValueError:
                return "raised"
        return "committed"

    async def main() -> list[str]:
        return list(await asyncio.gather(one(False), one(True), one(False)))

    assert asyncio.run(main()) == ["committed", "raised", "committed"]


def test_a_cancelled_event_loop_caller_still_commits_and_others_are_woken() -> None:
    writing, release = threading.Event(), threading.Event()
    written: list[int] = []

    def write(batch: list[Pending]) -> None:
        writing.set()
        release.wait(10)
        written.append(len(batch))

    commits = GroupCommit(write, company=0.0)

    async def main() -> None:
        first = asyncio.ensure_future(commits.commit(_item()))
        await wait_until_async(writing.is_set, message="the committer writes the first batch")
        second = asyncio.ensure_future(commits.commit(_item()))
        await yield_to_loop()
        first.cancel()
        release.set()
        await second
        assert first.cancelled()

    asyncio.run(main())
    assert written == [1, 1]


def test_a_caller_not_yet_announced_is_not_waited_for() -> None:
    commits = GroupCommit(lambda batch: None, company=30.0)
    with commits.expect(announce=False) as arrival:
        assert commits._coming == 0  # still waiting for a pool thread: a leader goes on
        arrival.announce()
        arrival.announce()
        assert commits._coming == 1
    assert commits._coming == 0
    arrival.announce()  # its thread started after the caller gave up: not counted
    assert commits._coming == 0
