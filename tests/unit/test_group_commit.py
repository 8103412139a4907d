"""The group commit's leader waits, bounded, for callers that announced themselves."""

from __future__ import annotations

import threading

from tests.support.waiting import wait_until

from sealmail.messages.group_commit import GroupCommit, Pending


def _item() -> Pending:
    return Pending(message={}, recipients=[], tags=[], events=[], audit=[], idempotency=None)


def test_a_leader_takes_an_announced_caller_into_its_batch() -> None:
    batches: list[int] = []
    commits = GroupCommit(lambda batch: batches.append(len(batch)), company=30.0)
    may_submit = threading.Event()

    def announced() -> None:
        with commits.expect() as submit:
            may_submit.wait()
            submit(_item())

    other = threading.Thread(target=announced)
    other.start()
    wait_until(lambda: commits._coming == 1, message="the other caller announced itself")
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
