"""The restore drill on a schedule (164.308(a)(7)(ii)(D): test the contingency plan, repeatedly).

Workers tick (``runtime.run_restore_drills``); once per ``restore_drill_minutes`` period one of
them claims the period in ``scheduled_runs`` (the primary key is the claim, so several workers
still run one drill) and runs ``drill.run``: back up, restore into a scratch database, verify
the chain, time it.  The report goes to the audit log like a drill run by hand, so the evidence
pack's drill register lists it.  A drill that fails — a report with ``ok`` false, or an error
that stopped it (recorded with ``drill.record_failure``) — is logged and mailed to every tenant's
compliance officers (the anchor recipients) with the report attached, as the audit anchors are.

A worker that dies mid-drill leaves its period claimed and unfinished (``finished_at`` empty).
Once that claim is a whole period old, the next check on any worker (``claims.abandoned``)
closes it and reports it as a failed drill — recorded in the register with the problem "never
finished" and mailed like any failure — so a dead drill is never a silent gap.  A drill that
really outruns its period is reported the same way: a drill that slow is itself a finding.
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

from sealmail.evidence import drill
from sealmail.evidence.anchor_recipients import AnchorRecipients, Notice
from sealmail.evidence.claims import Abandoned, Claims
from sealmail.evidence.drill import DrillReport
from sealmail.evidence.schedule import period_of

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
        self.claims = Claims(engine, JOB, owner)

    def tick(self, now: datetime | None = None) -> DrillReport | None:
        """Report drills that never finished, then run this period's drill if no worker has
        claimed it; its report, or None."""
        now = now or datetime.now(UTC)
        for lost in self.claims.abandoned(now - self.every):
            self._report_abandoned(lost)
        period = period_of(now, self.every)
        if not self.claims.take(period):
            return None
        try:
            self._check_tables()
            report = drill.run(self.engine, self.tables, self.blob_root, self.scratch_url, actor=ACTOR)
        except Exception as exc:  # noqa: BLE001 — whatever stopped it, the drill failed: say so
            report = drill.record_failure(self.engine, f"{type(exc).__name__}: {exc}", ACTOR)
        self.claims.finish(period, report.ok)
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

    def _report_abandoned(self, lost: Abandoned) -> None:
        problem = (
            f"the drill of period {lost.period} never finished: {lost.claimed_by} claimed it at "
            f"{lost.claimed_at.isoformat(timespec='seconds')} and stopped before reporting"
        )
        report = drill.record_failure(self.engine, problem, ACTOR)
        log.warning("evidence.drill_abandoned", period=lost.period, worker=lost.claimed_by)
        self._alert(lost.period, report)

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
