"""Worker child processes of ``sealmail serve`` (``supervisor.py``): how many, the restart
back-off and its limit, the bounded stop, and a child's watch on its parent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.waiting import wait_until_async

from sealmail.config import ConfigError, load_settings
from sealmail.supervisor import (
    RestartPolicy,
    Supervisor,
    WorkerChildFailed,
    watch_parent,
    worker_children,
)

FAST = RestartPolicy(first_delay=0.01, max_delay=0.05, max_quick_deaths=3)
ALL_ROLES = ["api", "smtp", "worker", "portal"]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@contextlib.asynccontextmanager
async def stopped_on_exit(stop: asyncio.Event, running: asyncio.Task[None]) -> AsyncIterator[None]:
    """Stop the supervisor (and so its children) however the test ends: a failed assertion
    once left a child that ignores SIGTERM running after the suite."""
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 10)


def test_auto_is_one_child_when_a_second_core_is_there_for_it() -> None:
    assert worker_children("auto", ALL_ROLES, 2) == 1
    assert worker_children("auto", ["api", "worker"], 16) == 1
    assert worker_children("auto", ALL_ROLES, 1) == 0
    assert worker_children("auto", ALL_ROLES, None) == 0  # unknown: assume one core


def test_a_count_is_taken_as_given_but_only_beside_other_roles() -> None:
    assert worker_children(3, ALL_ROLES, 1) == 3
    assert worker_children(0, ALL_ROLES, 8) == 0
    # `serve --role worker` is the scale-out layout: one process, whatever the setting.
    assert worker_children(3, ["worker"], 8) == 0
    assert worker_children("auto", ["worker"], 8) == 0
    assert worker_children(3, ["api", "smtp"], 8) == 0  # no worker role here at all


def test_the_setting_takes_auto_or_a_count_and_names_itself_otherwise() -> None:
    assert load_settings(worker_processes="auto").worker_processes == "auto"
    assert load_settings(worker_processes="2").worker_processes == 2
    for bad in ("-1", "65", "many", "1.5"):
        with pytest.raises(ConfigError, match=r"SEALMAIL_WORKER_PROCESSES: .*`auto` or a number"):
            load_settings(worker_processes=bad)


def test_restarts_back_off_doubling_up_to_a_cap() -> None:
    policy = RestartPolicy(first_delay=1.0, max_delay=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_child_that_keeps_dying_at_start_stops_the_parent_with_a_reason() -> None:
    stop = asyncio.Event()
    supervisor = Supervisor(1, python("raise SystemExit(3)"), dict(os.environ), FAST)
    with pytest.raises(WorkerChildFailed, match=r"died 3 times in a row.*exit 3"):
        asyncio.run(supervisor.run(stop))
    assert stop.is_set()  # the parent's roles stop too


def test_a_dead_child_is_started_again(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # Dies at once the first two times, then stays up (as a worker does).
    code = f"""
import pathlib, signal, sys
runs = pathlib.Path({str(runs)!r})
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
if len(runs.read_text()) < 3:
    sys.exit(1)
signal.pause()  # up until the supervisor's SIGTERM
"""

    async def scenario() -> None:
        stop = asyncio.Event()
        supervisor = Supervisor(1, python(code), dict(os.environ), FAST, stop_seconds=5)
        running = asyncio.create_task(supervisor.run(stop))
        async with stopped_on_exit(stop, running):
            # The child can run (and write) before create_subprocess_exec has returned to the
            # supervisor, which records its pid only then: wait for both.
            await wait_until_async(
                lambda: runs.exists() and runs.read_text() == "xxx" and 0 in supervisor.pids,
                20,
                "third start",
            )
            stop.set()
            await running  # no WorkerChildFailed: two quick deaths are under the limit

    asyncio.run(scenario())


def test_a_child_that_ignores_sigterm_is_killed_after_the_bound(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = f"""
import pathlib, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path({str(ready)!r}).touch()
while True:
    signal.pause()  # SIGTERM is ignored: only the SIGKILL after the bound ends it
"""

    async def scenario() -> int:
        stop = asyncio.Event()
        supervisor = Supervisor(1, python(code), dict(os.environ), FAST, stop_seconds=0.5)
        running = asyncio.create_task(supervisor.run(stop))
        async with stopped_on_exit(stop, running):
            # As above: the child touches ``ready`` possibly before its pid is recorded.
            await wait_until_async(lambda: ready.exists() and 0 in supervisor.pids, 20, "child started")
            pid = supervisor.pids[0]
            started = time.monotonic()
            stop.set()
            await running
            assert time.monotonic() - started < 5
            return pid

    pid = asyncio.run(scenario())
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped


def test_a_child_stops_when_its_parent_is_not_the_one_that_started_it() -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        # This process's parent is not itself: as if the starting parent had died.
        await asyncio.wait_for(watch_parent(os.getpid(), stop), 5)
        assert stop.is_set()

    asyncio.run(scenario())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_asks_the_kernel_for_sigterm_when_its_parent_dies() -> None:
    # In a process of its own: the setting would otherwise stay on this test process.
    code = """
import ctypes, os, signal
from sealmail.supervisor import die_with_parent
print(die_with_parent(os.getppid()), die_with_parent(os.getppid() + 1_000_000))
got = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(got), 0, 0, 0)  # PR_GET_PDEATHSIG
print(got.value == signal.SIGTERM)
"""
    out = subprocess.run(python(code), capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["True", "False", "True"]
