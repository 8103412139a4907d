"""The doors' messages (the SMTP gateway's, the REST API's) built, screened, sealed and
committed in one thread: the intake lane.

The gateway handed each message to asyncio's executor: a pool thread parsed, screened and
sealed it, then waited in the group commit for a leader, and the loop was woken once per
message by the pool's future.  With four connections that kept five threads taking the GIL
from one another; on the 2-core VM of issue 18, futex wake-ups, context switches and the
executor's futures were about a fifth of the gateway's CPU per message (perf).  Here one
thread takes every message queued since its last pass, prepares them one after the other
(the GIL allowed no more parallelism than that) together with those that arrive meanwhile,
commits them as one batch of the group commit (``GroupCommit.lead``; thread callers of the
same ``Messages`` may share it) and wakes each loop once per batch.  Messages that arrive
during the commit form the next batch, so nobody waits on a timer for company.  The API
(``Messages.submit_async``) had the same hand-offs (a pool thread per message, then a
group-commit arrival) and takes the same lane.

Nothing is acknowledged before its commit: a message's future completes after the batch
holding it is durable, or with the error that refused it (a ``prepare`` error fails only
that message; a failed batch is retried one message per transaction, as for every caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Final

from sealmail.messages.group_commit import GroupCommit, Pending

__all__ = ["IDLE_SECONDS", "MAX_BATCH", "THREADS", "Lane", "LaneJob"]

# How long a lane thread stays idle before it ends; a message that finds none idle starts one.
IDLE_SECONDS: Final = 5.0
# Lane threads at most.  One: a second, preparing what arrives while the first waits for its
# batch's fsync, cut the latency on a loaded machine but gave back most of the CPU saved (the
# two woke each other and took the GIL from each other; bench/README.md, "Ninth pass").
THREADS: Final = 1
# Messages one thread prepares before it commits them, however fast more arrive.
MAX_BATCH: Final = 64


class LaneJob:
    """One message on its way through the lane: ``future`` completes (on the caller's loop)
    once it is committed, and ``item`` then holds its rows."""

    __slots__ = ("future", "item", "loop", "prepare")

    def __init__(
        self, prepare: Callable[[], Pending], loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
    ) -> None:
        self.prepare = prepare
        self.loop = loop
        self.future = future
        self.item: Pending | None = None


class Lane:
    """The lane's thread(s): started when a message finds none free, each ended after
    ``IDLE_SECONDS`` without work."""

    def __init__(
        self, commits: GroupCommit, threads: int = THREADS, name: str = "sealmail-intake-lane"
    ) -> None:
        self._commits = commits
        self._max = threads
        self._name = name
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._jobs: list[LaneJob] = []
        self._threads = 0  # running
        self._idle = 0  # of those, waiting for a job
        self._preparing = 0  # of those, preparing (not yet committing)

    def submit(self, prepare: Callable[[], Pending]) -> LaneJob:
        """Queue a message from the running event loop.

        ``prepare`` builds its rows in a lane thread (its exception fails this job only).
        Await ``job.future``; ``job.item`` is then the committed rows.
        """
        loop = asyncio.get_running_loop()
        job = LaneJob(prepare, loop, loop.create_future())
        with self._lock:
            self._jobs.append(job)
            if not self._preparing:
                self._dispatch()
            # else a thread preparing takes it into its batch before it commits
        return job

    def _dispatch(self) -> None:
        """With ``_lock`` held and jobs queued: wake an idle thread, or start one if allowed
        (else a busy thread takes them when its commit returns)."""
        if self._idle:
            self._ready.notify()
        elif self._threads < self._max:
            self._threads += 1
            threading.Thread(target=self._serve, name=self._name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._idle += 1
                    woken = self._ready.wait(IDLE_SECONDS)
                    self._idle -= 1
                    if not woken and not self._jobs:
                        self._threads -= 1
                        return
                jobs, self._jobs = self._jobs, []
                self._preparing += 1
            # This thread must go on serving whatever one pass raised, or every later
            # message would wait for ever.
            with contextlib.suppress(BaseException):
                self._run(jobs)

    def _run(self, jobs: list[LaneJob]) -> None:
        """Prepare ``jobs`` and whatever queues meanwhile, fail those that could not be
        prepared, commit the rest in one batch."""
        items: list[Pending] = []
        try:
            while jobs:
                items += self._prepared(jobs)
                with self._lock:
                    if len(items) >= MAX_BATCH:
                        break  # commit these; what is queued goes to the next batch
                    jobs, self._jobs = self._jobs, []
        finally:
            with self._lock:
                self._preparing -= 1
                if self._jobs:
                    self._dispatch()
        if items:
            # Returns once they are committed (or failed); their futures are then being
            # completed on their loops.
            self._commits.lead(items)

    def _prepared(self, jobs: list[LaneJob]) -> list[Pending]:
        items: list[Pending] = []
        refused: list[tuple[LaneJob, BaseException]] = []
        for job in jobs:
            try:
                item = job.prepare()
            except Exception as exc:  # noqa: BLE001 — handed to its own caller, who raises it
                refused.append((job, exc))
                continue
            item.loop, item.future = job.loop, job.future
            job.item = item
            items.append(item)
        if refused:
            _refuse(refused)
        return items


def _refuse(refused: list[tuple[LaneJob, BaseException]]) -> None:
    """Complete the futures of jobs whose ``prepare`` raised: one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[LaneJob, BaseException]]] = {}
    for job, exc in refused:
        by_loop.setdefault(job.loop, []).append((job, exc))
    for loop, failed in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is left to answer
            loop.call_soon_threadsafe(_fail, failed)


def _fail(failed: list[tuple[LaneJob, BaseException]]) -> None:
    for job, exc in failed:
        if not job.future.done():
            job.future.set_exception(exc)
