"""The group commit's leader waits, bounded, for callers that announced themselves."""

from __future__ import annotations

import asyncio
import threading

from tests.support.waiting import wait_until, wait_until_async

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


# -- failures and event-loop callers ---------------------------------------------------------


def test_a_failed_batch_raises_in_each_caller_its_own_error() -> None:
    def write(batch: list[Pending]) -> None:
        if any(p.message.get("bad") for p in batch):
            raise ValueError("bad")

    commits = GroupCommit(write, company=30.0)
    outcomes: dict[int, str] = {}
    may_submit = threading.Event()

    def one(n: int, bad: bool) -> None:
        with commits.expect() as submit:
            may_submit.wait()
            try:
                submit(Pending({"bad": bad}, [], [], [], [], None))
            except ValueError:
                outcomes[n] = "raised"
            else:
                outcomes[n] = "committed"

    callers = [threading.Thread(target=one, args=(n, n == 1)) for n in range(3)]
    for caller in callers:
        caller.start()
    wait_until(lambda: commits._coming == 3, message="all three announced")
    may_submit.set()
    for caller in callers:
        caller.join()
    assert outcomes == {0: "committed", 1: "raised", 2: "committed"}


def test_led_event_loop_items_and_an_announced_thread_share_a_batch() -> None:
    """The intake lane leads for event-loop callers (``lead``): their futures complete on
    their loop once the batch holding them, and the announced thread's item, is written."""
    written: list[int] = []
    commits = GroupCommit(lambda batch: written.append(len(batch)), company=30.0)
    may_submit = threading.Event()
    other = _announced_thread(commits, may_submit)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        items = [_item(), _item()]
        for item in items:
            item.loop, item.future = loop, loop.create_future()
        leader = threading.Thread(target=commits.lead, args=(items,))
        leader.start()
        await wait_until_async(lambda: len(commits._queue) == 2, message="queued, the leader waits")
        assert written == []
        may_submit.set()
        await asyncio.gather(*(item.future for item in items if item.future is not None))
        assert written == [3], "a future completed before its batch was written"
        await asyncio.to_thread(leader.join)

    asyncio.run(main())
    other.join()


def test_a_cancelled_event_loop_caller_leaves_the_others_acknowledged() -> None:
    written: list[int] = []
    commits = GroupCommit(lambda batch: written.append(len(batch)), company=0.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first, second = _item(), _item()
        for item in (first, second):
            item.loop, item.future = loop, loop.create_future()
        assert first.future is not None and second.future is not None
        first.future.cancel()  # its client went away before the commit
        await asyncio.to_thread(commits.lead, [first, second])
        await second.future
        assert first.future.cancelled()

    asyncio.run(main())
    assert written == [2]  # the cancelled caller's message is still committed
