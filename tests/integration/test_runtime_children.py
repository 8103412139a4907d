"""``runtime.serve`` with the worker in child processes: a child that keeps dying stops the
serving process (its roles first), which then reports why."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from tests.conftest import make_settings

from sealmail import runtime, supervisor
from sealmail.app import Services
from sealmail.config import Settings
from sealmail.runtime import serve
from sealmail.supervisor import RestartPolicy, WorkerChildFailed


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, outbound_mode="mx")


def test_serve_stops_every_role_when_its_worker_child_keeps_dying(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "RESTARTS", RestartPolicy(first_delay=0.01, max_quick_deaths=2))
    monkeypatch.setattr(runtime, "child_argv", lambda _pid: [sys.executable, "-c", "raise SystemExit(4)"])
    ready = asyncio.Event()

    async def scenario() -> None:
        # serve returns only once its own roles (the API here) have stopped too.
        await asyncio.wait_for(serve(services, ["api", "worker"], ready=ready, worker_children=1), 60)

    with pytest.raises(WorkerChildFailed, match=r"worker child 0 died 2 times in a row, .*exit 4"):
        asyncio.run(scenario())
    assert ready.is_set()  # the API had come up before the children were started
