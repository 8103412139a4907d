"""The scheduled restore drill: once per period however many workers tick, recorded in the
evidence register like a drill run by hand, and a failed drill — a chain that no longer verifies,
or a drill that cannot run at all — mailed to every tenant's compliance officers, audited."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import make_settings, make_tenant
from tests.support.waiting import wait_until_async

from sealmail import audit, runtime
from sealmail.app import Services, build_drill_schedule, build_services
from sealmail.audit import AuditAction
from sealmail.evidence import drill
from sealmail.evidence.drill_schedule import ALERT_TAG, DrillSchedule
from sealmail.evidence.tables import scheduled_runs
from sealmail.store.tables import audit_log, message_tags, messages

pytestmark = [pytest.mark.hipaa("164.308(a)(7)(ii)(A)"), pytest.mark.timeout(120)]
NOW = datetime(2026, 12, 4, 3, 17, tzinfo=UTC)
DAY = 24 * 60


def _schedule(services: Services, owner: str) -> DrillSchedule:
    made = build_drill_schedule(services, owner)
    assert made is not None
    return made


def _runs(services: Services) -> list[tuple[str, str, bool | None]]:
    with services.engine.connect() as conn:
        query = sa.select(scheduled_runs.c.period, scheduled_runs.c.claimed_by, scheduled_runs.c.ok)
        return [tuple(r) for r in conn.execute(query.order_by(scheduled_runs.c.period))]  # type: ignore[misc]


def _alerts(services: Services) -> list[str]:
    """The ids of queued failure notices."""
    with services.engine.connect() as conn:
        query = sa.select(message_tags.c.message_id).where(message_tags.c.tag == ALERT_TAG)
        return list(conn.execute(query).scalars())


def test_off_by_default(tmp_path: Path, db_url: str) -> None:
    services = build_services(make_settings(tmp_path, db_url))
    try:
        assert services.settings.restore_drill_minutes == 0
        assert build_drill_schedule(services, "w1") is None
    finally:
        services.close()


def test_one_drill_per_period_whatever_the_workers(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, restore_drill_minutes=DAY)
    workers = [build_services(settings) for _ in range(3)]
    try:
        make_tenant(workers[0])
        schedules = [_schedule(w, f"worker-{i}") for i, w in enumerate(workers)]
        reports: list[drill.DrillReport | None] = []
        threads = [threading.Thread(target=lambda s=s: reports.append(s.tick(NOW))) for s in schedules]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        ran = [r for r in reports if r is not None]
        assert len(reports) == 3 and len(ran) == 1 and ran[0].ok, ran
        assert schedules[0].tick(NOW + timedelta(hours=5)) is None  # same day: nothing
        [(period, owner, ok)] = _runs(workers[0])
        assert period == "2026-12-04T00:00" and owner.startswith("worker-") and ok is True
        # The register the evidence pack reads has it, by the scheduler.
        [entry] = drill.drills(
            workers[0].engine, NOW - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
        )
        assert entry["ok"] is True and entry["recovery_time_seconds"] > 0
        with workers[0].engine.connect() as conn:
            actor = conn.execute(
                sa.select(audit_log.c.actor).where(audit_log.c.action == str(AuditAction.BACKUP_DRILL))
            ).scalar_one()
        assert actor == "system:drill"
        assert _alerts(workers[0]) == []  # a passing drill mails nobody
        nxt = schedules[1].tick(NOW + timedelta(days=1))
        assert nxt is not None and nxt.ok and len(_runs(workers[0])) == 2
    finally:
        for w in workers:
            w.close()


def test_a_failed_drill_is_recorded_and_mailed_to_the_officers(tmp_path: Path, db_url: str) -> None:
    services = build_services(make_settings(tmp_path, db_url, restore_drill_minutes=DAY))
    try:
        clinic = make_tenant(services)
        services.evidence.anchor_recipients.set(clinic.id, ["officer@clinic.example"], "test")
        # History rewritten in the live database: the restored copy's chain no longer verifies.
        with services.engine.begin() as conn:
            audit.append(conn, action=AuditAction.REPORT_EXPORTED, actor="user:ann", tenant_id=clinic.id)
            conn.execute(sa.update(audit_log).where(audit_log.c.seq == 1).values(actor="user:mallory"))
        report = _schedule(services, "w1").tick(NOW)
        assert report is not None and not report.ok and "entry 1 was edited" in report.problem
        assert _runs(services) == [("2026-12-04T00:00", "w1", False)]
        [alert_id] = _alerts(services)
        with services.engine.connect() as conn:
            row = conn.execute(sa.select(messages).where(messages.c.id == alert_id)).one()
            mailed = conn.execute(
                sa.select(audit_log.c.details).where(
                    audit_log.c.action == str(AuditAction.EVIDENCE_ALERT_MAILED)
                )
            ).scalar_one()
        assert mailed["to"] == "officer@clinic.example" and mailed["message_id"] == alert_id
        raw = services.keyring.open(clinic.id, row.id, row.tenant_key_id, row.wrapped_data_key, row.content)
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert "restore drill FAILED" in str(mail["Subject"]) and mail["Auto-Submitted"] == "auto-generated"
        [part] = list(mail.iter_attachments())
        attached = json.loads(part.get_content())
        assert attached["ok"] is False and "entry 1 was edited" in attached["problem"]
    finally:
        services.close()


def test_a_drill_that_cannot_run_is_a_failed_drill(tmp_path: Path, db_url: str) -> None:
    # The live database as the "scratch" one: not empty, so the restore refuses before writing.
    settings = make_settings(tmp_path, db_url, restore_drill_minutes=DAY, restore_drill_scratch_url=db_url)
    services = build_services(settings)
    try:
        clinic = make_tenant(services)
        services.evidence.anchor_recipients.set(clinic.id, ["officer@clinic.example"], "test")
        report = _schedule(services, "w1").tick(NOW)
        assert report is not None and not report.ok
        assert report.problem.startswith("Conflict: restore needs an empty database")
        [entry] = drill.drills(
            services.engine, NOW - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
        )
        assert entry["ok"] is False and entry["problem"] == report.problem
        assert len(_alerts(services)) == 1
    finally:
        services.close()


def test_the_worker_role_runs_the_drill(tmp_path: Path, db_url: str) -> None:
    services = build_services(make_settings(tmp_path, db_url, restore_drill_minutes=DAY))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run_restore_drills(services, stop, "worker-1"))
        await wait_until_async(
            lambda: bool(_runs(services)) and _runs(services)[0][2] is not None, 60, "drill"
        )
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        make_tenant(services)
        asyncio.run(scenario())
        [(_, owner, ok)] = _runs(services)
        assert owner == "worker-1" and ok is True
    finally:
        services.close()


@pytest.fixture
def watched(tmp_path: Path, db_url: str) -> Iterator[Services]:
    """Daily drills, and a tenant whose compliance officer is mailed failed ones."""
    services = build_services(make_settings(tmp_path, db_url, restore_drill_minutes=DAY))
    officer = make_tenant(services)
    services.evidence.anchor_recipients.set(officer.id, ["officer@clinic.example"], "test")
    yield services
    services.close()


def test_a_drill_whose_worker_died_is_reported_failed_a_period_later(watched: Services) -> None:
    services = watched
    # Yesterday's drill, claimed by a worker that died before it reported.
    with services.engine.begin() as conn:
        conn.execute(
            sa.insert(scheduled_runs).values(
                job="restore_drill",
                period="2026-12-03T00:00",
                claimed_by="worker-dead",
                claimed_at=datetime(2026, 12, 3, 0, 5, tzinfo=UTC),
            )
        )
    survivor = _schedule(services, "worker-2")
    # Less than a period old: it may still be running, nothing is said yet.
    assert survivor.tick(datetime(2026, 12, 3, 20, 0, tzinfo=UTC)) is None
    assert _runs(services) == [("2026-12-03T00:00", "worker-dead", None)] and _alerts(services) == []

    today = survivor.tick(NOW)
    assert today is not None and today.ok
    assert _runs(services) == [
        ("2026-12-03T00:00", "worker-dead", False),
        ("2026-12-04T00:00", "worker-2", True),
    ]
    register = drill.drills(services.engine, NOW - timedelta(days=2), datetime.now(UTC) + timedelta(days=1))
    [lost] = [e for e in register if not e["ok"]]
    assert "2026-12-03T00:00 never finished" in lost["problem"] and "worker-dead" in lost["problem"]
    assert len(_alerts(services)) == 1  # mailed like any failed drill
    # Reported once: another worker's check finds nothing more to say.
    assert _schedule(services, "worker-3").tick(NOW) is None
    assert len(_alerts(services)) == 1
