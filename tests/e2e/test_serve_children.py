"""``sealmail serve`` with every role runs the delivery worker in a child process
(``SEALMAIL_WORKER_PROCESSES``): it delivers, is restarted when it dies, stops with its parent
and never outlives it; 0 keeps everything in one process."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest
from tests.e2e.serve_harness import Running, alive, children, cmdline, serving
from tests.support.waiting import wait_until

# Each test starts several interpreters; on a busy shared machine that alone takes a minute.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def delivering_pid(running: Running, mid: str) -> int:
    """The process that delivered ``mid``: a worker's name is ``host:pid:tag``."""
    db = sqlite3.connect(running.home / "sealmail.db")
    try:
        (worker,) = db.execute("SELECT worker FROM attempts WHERE message_id = ?", (mid,)).fetchone()
    finally:
        db.close()
    return int(worker.split(":")[1])


def deliver_one(running: Running) -> int:
    mid = running.submit()
    wait_until(lambda: running.is_delivered(mid), timeout=30, message=f"{mid} not delivered")
    return delivering_pid(running, mid)


def one_child(parent: int) -> int:
    wait_until(lambda: len(children(parent)) == 1, timeout=10, message="no worker child")
    (child,) = children(parent)
    return child


def test_the_worker_runs_in_a_child_process_and_delivers(tmp_path: Path) -> None:
    with serving(tmp_path, worker_processes="1") as running:
        parent = running.proc.pid
        child = one_child(parent)
        assert cmdline(child)[-5:] == ["serve", "--role", "worker", "--child-of", str(parent)]
        assert cmdline(child)[0] == cmdline(parent)[0]  # the same interpreter
        # A process group of its own: a terminal's Ctrl-C reaches the parent only, which
        # stops the child (started on uvloop, the default loop, as on asyncio's).
        assert os.getpgid(child) == child != os.getpgid(parent)
        # Delivered by the child, to the capture sink the parent runs.
        assert deliver_one(running) == child


def test_a_killed_worker_child_is_restarted_and_delivery_continues(tmp_path: Path) -> None:
    with serving(tmp_path, worker_processes="1") as running:
        parent = running.proc.pid
        first = one_child(parent)
        os.kill(first, signal.SIGKILL)
        wait_until(
            lambda: children(parent) not in ([], [first]), timeout=20, message="the child was not restarted"
        )
        (second,) = children(parent)
        assert deliver_one(running) == second
        assert running.proc.poll() is None
        running.proc.send_signal(signal.SIGTERM)
        running.proc.wait(30)
        out = running.output.until_closed()
    assert running.proc.returncode == 0
    assert "worker_child.died" in out and "signal SIGKILL" in out  # logged, with how it died
    assert "worker_child.restarting" in out
    assert not alive(second)


def test_sigterm_to_the_parent_drains_the_child_and_leaves_no_process(tmp_path: Path) -> None:
    with serving(tmp_path, worker_processes="2") as running:
        parent = running.proc.pid
        wait_until(lambda: len(children(parent)) == 2, timeout=10, message="two worker children")
        kids = children(parent)
        # Both running their worker loop (a child still importing when SIGTERM comes exits
        # before it has anything to drain, and says nothing).
        wait_until(
            lambda: running.output.text().count("worker.started") >= 2, timeout=60, message="two workers up"
        )
        deliver_one(running)
        running.proc.send_signal(signal.SIGTERM)
        running.proc.wait(30)
        out = running.output.until_closed()
    assert running.proc.returncode == 0
    assert not [pid for pid in kids if alive(pid)]
    assert out.count("worker.stopped") == 2  # each child drained and flushed before exiting
    assert out.count("worker_child.stopped") == 2 and "status='exit 0'" in out


def test_a_child_never_outlives_its_parent(tmp_path: Path) -> None:
    with serving(tmp_path, worker_processes="1") as running:
        child = one_child(running.proc.pid)
        assert deliver_one(running) == child  # up and working
        running.proc.kill()  # no chance to stop its children
        running.proc.wait(5)
        wait_until(lambda: not alive(child), timeout=30, message="the worker child outlived its parent")


def test_worker_processes_0_keeps_every_role_in_one_process(tmp_path: Path) -> None:
    with serving(tmp_path, worker_processes="0") as running:
        assert children(running.proc.pid) == []
        assert deliver_one(running) == running.proc.pid
