"""The OSV advisories refreshed by the workers: once per period however many workers tick, a
failed refresh keeps the previous answer (the packs keep saying its time) and is recorded as
failed, and a worker that stops mid-refresh gives its period back instead of leaving it claimed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog
from tests.conftest import make_settings, make_tenant
from tests.integration.evidence.test_dependency_audit import _api_pack, _section
from tests.integration.evidence.test_drill_schedule import _runs
from tests.support.ca import TestCA
from tests.support.https_server import Route
from tests.support.osv_server import OsvServer, advisory
from tests.support.waiting import wait_until_async

from sealmail import runtime
from sealmail.app import Services, build_advisory_refresh, build_services
from sealmail.config import Settings
from sealmail.evidence.advisory_refresh import AdvisoryRefresh, Refreshed
from sealmail.evidence.tables import scheduled_runs

pytestmark = [pytest.mark.hipaa("164.308(a)(1)(ii)(A)"), pytest.mark.timeout(60)]
NOW = datetime(2026, 12, 4, 3, 17, tzinfo=UTC)
DAY = 24 * 60


@pytest.fixture
def osv(ca: TestCA) -> Iterator[OsvServer]:
    with OsvServer(ca) as server:
        server.add(advisory("GHSA-jjjj-0001", "Jinja2", ["2.4"], fixed="2.10.1", severity="HIGH"))
        yield server


@pytest.fixture
def refreshing(tmp_path: Path, db_url: str, osv: OsvServer, ca: TestCA) -> Iterator[Services]:
    lock = tmp_path / "requirements.lock"
    lock.write_text("Jinja2==2.4\n")
    settings = make_settings(
        tmp_path,
        db_url,
        osv_url=osv.url,
        tls_ca_file=Path(ca.ca_file),
        evidence_lock_file=lock,
        osv_refresh_minutes=DAY,
    )
    svc = build_services(settings)
    yield svc
    svc.close()


def _refresh(services: Services, owner: str) -> AdvisoryRefresh:
    made = build_advisory_refresh(services, owner)
    assert made is not None
    return made


def test_daily_by_default_and_off_at_zero(tmp_path: Path, db_url: str) -> None:
    assert Settings.model_fields["osv_refresh_minutes"].default == DAY
    services = build_services(make_settings(tmp_path, db_url, osv_refresh_minutes=0))
    try:
        assert build_advisory_refresh(services, "w1") is None
    finally:
        services.close()


def test_one_refresh_per_period_whatever_the_workers(refreshing: Services, osv: OsvServer) -> None:
    workers = [_refresh(refreshing, f"worker-{i}") for i in range(3)]

    async def all_tick(at: datetime) -> list[Refreshed | None]:
        return list(await asyncio.gather(*(w.tick(at) for w in workers)))

    first = asyncio.run(all_tick(NOW))
    assert sorted(first, key=str) == [None, None, Refreshed.STORED], first
    assert len(osv.queries) == 1
    snap = refreshing.evidence.dependencies.snapshot()
    assert snap is not None and [f.id for f in snap.findings] == ["GHSA-jjjj-0001"]
    [(period, owner, ok)] = _runs(refreshing)
    assert period == "2026-12-04T00:00" and owner.startswith("worker-") and ok is True
    assert asyncio.run(all_tick(NOW + timedelta(hours=20))) == [None, None, None]
    # The next day, one of them asks again.
    assert Refreshed.STORED in asyncio.run(all_tick(NOW + timedelta(days=1)))
    assert len(osv.queries) == 2 and len(_runs(refreshing)) == 2


def test_a_failed_refresh_keeps_the_old_answer_and_says_so(refreshing: Services, osv: OsvServer) -> None:
    tenant = make_tenant(refreshing)
    worker = _refresh(refreshing, "w1")
    assert asyncio.run(worker.tick(NOW)) is Refreshed.STORED
    kept = refreshing.evidence.dependencies.snapshot()
    assert kept is not None

    osv.web.set_handler(
        "/v1/querybatch", lambda body: Route(503, b"{}", {"Content-Type": "application/json"})
    )
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(worker.tick(NOW + timedelta(days=1))) is Refreshed.FAILED
    [failed] = [e for e in logs if e["event"] == "evidence.advisories_refresh_failed"]
    assert failed["kept_as_of"] == kept.fetched_at and failed["period"] == "2026-12-05T00:00"
    assert "HTTP 503" in failed["reason"] and failed["log_level"] == "warning"
    assert refreshing.evidence.dependencies.snapshot() == kept
    assert _runs(refreshing)[-1] == ("2026-12-05T00:00", "w1", False)
    # Every pack keeps saying how old its advisories are.
    check = _section(_api_pack(refreshing, tenant))["vulnerability_check"]
    assert isinstance(check, dict) and check["as_of"] == kept.fetched_at
    assert [f["id"] for f in check["findings"]] == ["GHSA-jjjj-0001"]


def test_the_worker_role_refreshes_and_stops_without_waiting_for_osv(
    refreshing: Services, osv: OsvServer
) -> None:
    # OSV that answers only when let go: the worker is stopped while the refresh waits on it.
    entered, release = threading.Event(), threading.Event()

    def slow(body: bytes) -> Route:
        entered.set()
        release.wait(30)
        return Route(503, b"{}", {"Content-Type": "application/json"})

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run_advisory_refresh(refreshing, stop, "worker-1"))
        await wait_until_async(entered.is_set, 20, "the worker never asked OSV")
        stop.set()
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(task, 10)
        return asyncio.get_running_loop().time() - started

    osv.web.set_handler("/v1/querybatch", slow)
    try:
        assert asyncio.run(scenario()) < 5
    finally:
        release.set()
    # The period was given back: the next worker up refreshes it.
    assert _runs(refreshing) == []
    assert refreshing.evidence.dependencies.snapshot() is None

    osv.web.set_handler("/v1/querybatch", osv._querybatch)

    async def again() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run_advisory_refresh(refreshing, stop, "worker-2"))
        await wait_until_async(lambda: bool(_runs(refreshing)) and _runs(refreshing)[0][2] is not None, 20)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(again())
    [(_, owner, ok)] = _runs(refreshing)
    assert owner == "worker-2" and ok is True
    assert refreshing.evidence.dependencies.snapshot() is not None


def test_a_refresh_whose_worker_died_is_closed_as_failed_a_period_later(refreshing: Services) -> None:
    worker = _refresh(refreshing, "w2")
    with refreshing.engine.begin() as conn:
        conn.execute(
            sa.insert(scheduled_runs).values(
                job=worker.claims.job,
                period="2026-12-03T00:00",
                claimed_by="w-dead",
                claimed_at=NOW - timedelta(days=1, hours=2),
            )
        )
    assert asyncio.run(worker.tick(NOW)) is Refreshed.STORED
    assert _runs(refreshing) == [("2026-12-03T00:00", "w-dead", False), ("2026-12-04T00:00", "w2", True)]
