"""Worker child processes of ``sealmail serve``: the delivery worker beside the serving process
rather than inside it, so the API (or SMTP gateway) and delivery each get a core — one Python
interpreter runs Python on one core at a time (the GIL), as Postfix's daemons do not.

The parent keeps ``count`` children running, each ``sealmail serve --role worker`` started by the
same interpreter with the same environment and working directory (so the same settings); their
logs go to the parent's stdout and stderr. A child that dies while the parent is serving is
logged and started again after a back-off (1 s, doubling to 30 s); one that died
``MAX_QUICK_DEATHS`` times in a row, each within ``STABLE_SECONDS`` of starting, stops the parent
with ``WorkerChildFailed`` (exit status 1) rather than looping. On stop the parent sends SIGTERM
(the worker finishes its deliveries in flight and records them), waits up to ``STOP_SECONDS``,
then SIGKILL — a recipient left leased is claimed again when its lease runs out.

A child watches its parent (``watch_parent``): on Linux the kernel sends it SIGTERM when the parent
dies, even by SIGKILL (``PR_SET_PDEATHSIG``); everywhere it also notices within a second that its
parent is no longer the process that started it. Either way it drains and exits: no orphan keeps
delivering.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

log = structlog.get_logger("sealmail.supervisor")

STOP_SECONDS = 30.0  # a child's drain on SIGTERM, before SIGKILL
PARENT_POLL_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class WorkerChildFailed(RuntimeError):
    """A worker child kept dying right after it started; the parent gives up and exits."""


@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 1.0  # seconds before the first restart; doubled per quick death
    max_delay: float = 30.0
    max_quick_deaths: int = 5  # in a row, then give up
    stable_seconds: float = 60.0  # a child that lived this long starts the count again

    def delay(self, quick_deaths: int) -> float:
        return min(self.max_delay, self.first_delay * 2.0 ** max(0, quick_deaths - 1))


RESTARTS = RestartPolicy()


def worker_children(setting: int | str, roles: Sequence[str], cpus: int | None) -> int:
    """How many worker child processes ``serve`` starts for ``roles``.

    Only when it serves the worker role beside another: ``serve --role worker`` alone is the
    scale-out layout and stays one process. ``auto`` is one child when there is a second core
    for it (a child on one core only adds its start-up and the hand-off through the database).
    """
    if "worker" not in roles or len(roles) < 2:
        return 0
    if setting == "auto":
        return 1 if (cpus or 1) >= 2 else 0
    return int(setting)


def child_argv(parent_pid: int) -> list[str]:
    """``sealmail serve --role worker`` as a child of ``parent_pid``, by this interpreter."""
    return [sys.executable, "-m", "sealmail.cli", "serve", "--role", "worker", "--child-of", str(parent_pid)]


class Supervisor:
    """Keeps ``count`` children of ``argv`` running until ``stop`` (see the module docstring)."""

    def __init__(
        self,
        count: int,
        argv: Sequence[str],
        env: dict[str, str],
        policy: RestartPolicy | None = None,
        stop_seconds: float = STOP_SECONDS,
    ) -> None:
        self.count = count
        self.argv = list(argv)
        self.env = env
        self.policy = policy or RESTARTS
        self.stop_seconds = stop_seconds
        self.pids: dict[int, int] = {}  # slot -> pid of its running child

    async def run(self, stop: asyncio.Event) -> None:
        """Run every slot until ``stop``; on ``WorkerChildFailed`` stop the rest (and set ``stop``)."""
        slots = [asyncio.create_task(self._keep(slot, stop)) for slot in range(self.count)]
        try:
            await asyncio.gather(*slots)
        except WorkerChildFailed:
            stop.set()  # the other slots (and the parent's roles) stop too
            await asyncio.gather(*slots, return_exceptions=True)
            raise

    async def _keep(self, slot: int, stop: asyncio.Event) -> None:
        quick_deaths = 0
        while not stop.is_set():
            started = time.monotonic()
            proc = await self._start(slot)
            code = await _wait_or_stop(proc, stop)
            self.pids.pop(slot, None)
            if code is None:  # stop: drain it
                await self._stop(slot, proc)
                return
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < self.policy.stable_seconds else 1
            log.warning("worker_child.died", slot=slot, pid=proc.pid, status=_status(code))
            if quick_deaths >= self.policy.max_quick_deaths:
                raise WorkerChildFailed(
                    f"worker child {slot} died {quick_deaths} times in a row, each within "
                    f"{self.policy.stable_seconds:.0f} s of starting (last: {_status(code)}); "
                    "see its log above"
                )
            delay = self.policy.delay(quick_deaths)
            log.info("worker_child.restarting", slot=slot, after_seconds=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _start(self, slot: int) -> asyncio.subprocess.Process:
        # Forked by the event loop's thread (the main thread, which lives as long as the
        # process): PR_SET_PDEATHSIG fires when the thread that forked the child ends. Its own
        # session, so its own process group (uvloop's subprocess_exec has no process_group): a
        # terminal's Ctrl-C reaches the parent only, which stops the children and waits for them
        # before it stops the capture sink they deliver to.
        proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.pids[slot] = proc.pid
        log.info("worker_child.started", slot=slot, pid=proc.pid)
        return proc

    async def _stop(self, slot: int, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), self.stop_seconds)
        except TimeoutError:
            log.warning("worker_child.killed", slot=slot, pid=proc.pid, after_seconds=self.stop_seconds)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        log.info("worker_child.stopped", slot=slot, pid=proc.pid, status=_status(code))


async def _wait_or_stop(proc: asyncio.subprocess.Process, stop: asyncio.Event) -> int | None:
    """The child's exit status, or None once ``stop`` is set first."""
    exited = asyncio.create_task(proc.wait())
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if exited in done:
        return exited.result()
    exited.cancel()
    return None


def _status(code: int) -> str:
    if code < 0:
        return (
            f"signal {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"signal {-code}"
        )
    return f"exit {code}"


# -- the child's side ------------------------------------------------------------------------------
def die_with_parent(parent_pid: int) -> bool:
    """Ask the kernel for SIGTERM when the parent dies (Linux); False if it is gone already."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The parent may have died before prctl: then this process was re-parented already.
    return os.getppid() == parent_pid


async def watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``parent_pid`` is no longer this process's parent (any POSIX)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("worker_child.parent_gone", parent=parent_pid)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PARENT_POLL_SECONDS)
