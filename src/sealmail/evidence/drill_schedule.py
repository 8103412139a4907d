"""The restore drill on a schedule (164.308(a)(7)(ii)(D): test the contingency plan, repeatedly).

Workers tick (``runtime.run_restore_drills``); once per ``restore_drill_minutes`` period one of
them claims the period in ``scheduled_runs`` (the primary key is the claim, so several workers
still run one drill) and runs ``drill.run``: back up, restore into a scratch database, verify
the chain, time it.  The report goes to the audit log like a drill run by hand, so the evidence
pack's drill register lists it.  A drill that fails — a report with ``ok`` false, or an error
that stopped it (recorded with ``drill.record_failure``) — is logged and mailed to every tenant's
compliance officers (the anchor recipients) with the report attached, as the audit anchors are.

A worker that dies mid-drill leaves its period claimed and unfinished (``finished_at`` empty):
that period has no drill, the next period runs one, and the missing report is itself visible
in the register.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from sealmail.evidence import drill
from sealmail.evidence.anchor_recipients import AnchorRecipients, Notice
from sealmail.evidence.drill import DrillReport
from sealmail.evidence.schedule import period_of
from sealmail.evidence.tables import scheduled_runs
from sealmail.store import db

log = structlog.get_logger("sealmail.evidence")
JOB = "restore_drill"
ACTOR = "system:drill"
ALERT_TAG = "restore-drill-failed"


class DrillSchedule:
    def __init__(
        self,
        engine: Engine,
        tables: Sequence[sa.Table],
        blob_root: Path | None,
        every: timedelta,
        owner: str,
        officers: AnchorRecipients | None = None,
        scratch_url: str | None = None,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.blob_root = blob_root
        self.every = every
        self.owner = owner
        self.officers = officers
        self.scratch_url = scratch_url

    def tick(self, now: datetime | None = None) -> DrillReport | None:
        """Run this period's drill if no worker has claimed it; its report, or None."""
        period = period_of(now or datetime.now(UTC), self.every)
        if not self._claim(period):
            return None
        try:
            self._check_tables()
            report = drill.run(self.engine, self.tables, self.blob_root, self.scratch_url, actor=ACTOR)
        except Exception as exc:  # noqa: BLE001 — whatever stopped it, the drill failed: say so
            report = drill.record_failure(self.engine, f"{type(exc).__name__}: {exc}", ACTOR)
        self._finish(period, report.ok)
        if report.ok:
            log.info("evidence.drill_passed", period=period, rto=report.recovery_time_seconds)
        else:
            log.warning("evidence.drill_failed", period=period)
            self._alert(period, report)
        return report

    def _check_tables(self) -> None:
        """A drill of part of the database proves nothing: every table there must be copied."""
        known = {t.name for t in self.tables} | {"alembic_version"}
        unknown = sorted(set(sa.inspect(self.engine).get_table_names()) - known)
        if unknown:
            raise RuntimeError(f"tables this worker does not know would be left out: {', '.join(unknown)}")

    def _claim(self, period: str) -> bool:
        taken = sa.select(scheduled_runs.c.period).where(
            scheduled_runs.c.job == JOB, scheduled_runs.c.period == period
        )
        with db.reader(self.engine) as conn:
            if conn.execute(taken).first() is not None:
                return False  # the cheap check every tick makes; the primary key is the real guard
        try:
            with db.write(self.engine) as conn:
                conn.execute(
                    sa.insert(scheduled_runs).values(
                        job=JOB, period=period, claimed_by=self.owner[:80], claimed_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            return False  # this period's drill is another worker's (or already done)
        return True

    def _finish(self, period: str, ok: bool) -> None:
        with db.write(self.engine) as conn:
            conn.execute(
                sa.update(scheduled_runs)
                .where(scheduled_runs.c.job == JOB, scheduled_runs.c.period == period)
                .values(finished_at=datetime.now(UTC), ok=ok)
            )

    def _alert(self, period: str, report: DrillReport) -> None:
        if self.officers is None:
            return
        text = (
            "The scheduled restore drill failed: the last backup could not be shown to restore\n"
            "into a working, verified database.\n\n"
            f"Period: {period}\nRan at: {report.ran_at}\nProblem: {report.problem or 'see the report'}\n\n"
            "The report is attached and recorded in the audit log (backup:drill). Run\n"
            "`sealmail backup drill` to try again once the cause is fixed.\n"
        )
        report_json = json.dumps(asdict(report), indent=2, sort_keys=True).encode()
        notice = Notice(
            subject=f"Sealmail: restore drill FAILED ({period})",
            text=text,
            tag=ALERT_TAG,
            metadata={"restore_drill": period},
            attachment=(report_json, f"restore-drill-{period.replace(':', '')}.json"),
        )
        mailed = self.officers.alert(notice)
        log.warning("evidence.drill_alerted", period=period, mailed=len(mailed))
