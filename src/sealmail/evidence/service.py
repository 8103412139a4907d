"""The evidence feature as one object the composition root builds and hands out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest
from sealmail.evidence.activity_review import ActivityReview
from sealmail.evidence.anchor_recipients import AnchorRecipients
from sealmail.evidence.anchors import Anchors
from sealmail.evidence.catalogue import REPORTS
from sealmail.evidence.dependencies import DependencyAudit
from sealmail.evidence.keys import EvidenceKeys
from sealmail.evidence.mailing import AnchorMailer
from sealmail.evidence.plain import PlainRegister
from sealmail.evidence.preferences import PreferenceRegister
from sealmail.evidence.proofs import Proofs
from sealmail.evidence.reports import Period, ReportFilter
from sealmail.evidence.retention import Retention
from sealmail.evidence.tabular import table_csv, table_pdf
from sealmail.evidence.timestamps import Timestamper
from sealmail.evidence.working_hours import SettingsWriter
from sealmail.tenancy.keyring import Keyring

# A report with no period of its own (retention) is stamped with this one.
ALL_TIME = Period(datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


class Evidence:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        site_key: Callable[[str], bytes],
        mailer: AnchorMailer | None = None,
        tsa: Timestamper | None = None,
        results_file: Path | None = None,
        settings: SettingsWriter | None = None,
        dependencies: DependencyAudit | None = None,
    ) -> None:
        self.engine = engine
        # Where `make test` leaves the hipaa-marked tests' results (<home>/test-results/…):
        # every pack — CLI, API, console — carries them when the file is there.
        self.results_file = results_file
        # The lock file and the OSV advisories last fetched for it, read by every pack.
        self.dependencies = dependencies or DependencyAudit(None, None, None)
        self.mailer = mailer
        self.tsa = tsa
        self.keys = EvidenceKeys(engine, keyring, site_key)
        self.proofs = Proofs(engine, keyring, self.keys, tsa)
        self.anchors = Anchors(engine, self.keys, tsa)
        self.retention = Retention(engine)
        self.plain = PlainRegister(engine)
        self.preferences = PreferenceRegister(engine)
        self.anchor_recipients = AnchorRecipients(engine, mailer)
        self.activity_review = ActivityReview(engine, settings)

    def anchor(
        self, actor: str, period: str | None = None, *, unstamped_if_tsa_down: bool = False
    ) -> dict[str, Any]:
        return self.anchors.anchor(actor, period, unstamped_if_tsa_down=unstamped_if_tsa_down)

    def report(
        self,
        name: str,
        tenant_id: str,
        period: Period | None,
        actor: str,
        fmt: str = "csv",
        f: ReportFilter | None = None,
    ) -> bytes:
        """One report as CSV (UTF-8) or PDF; exporting it is audited (who, which, what period)."""
        kind = REPORTS.get(name)
        if kind is None:
            raise InvalidRequest(f"unknown report {name!r}; one of {', '.join(REPORTS)}")
        if fmt not in ("csv", "pdf"):
            raise InvalidRequest("format must be csv or pdf")
        if period is not None and period.until <= period.since:
            raise InvalidRequest("the period ends before it starts (until must be after since)")
        if period is None:
            if kind.needs_period:
                raise InvalidRequest(f"the {name} report needs a period (since and until)")
            period = ALL_TIME
        f = f or ReportFilter()
        rows = kind.rows(self.engine, tenant_id, period, f)
        self._exported(name, tenant_id, period, actor, fmt, f)
        if fmt == "csv":
            return table_csv(kind.header, rows).encode()
        return table_pdf(_title(kind.title, tenant_id, period, f), kind.header, rows)

    def delivery_report(self, tenant_id: str, period: Period, actor: str) -> str:
        return self.report("delivery", tenant_id, period, actor).decode()

    def delivery_report_pdf(self, tenant_id: str, period: Period, actor: str) -> bytes:
        return self.report("delivery", tenant_id, period, actor, "pdf")

    def _exported(
        self, name: str, tenant_id: str, period: Period, actor: str, fmt: str, f: ReportFilter
    ) -> None:
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.REPORT_EXPORTED,
                actor=actor,
                tenant_id=tenant_id,
                details={
                    "report": name,
                    "format": fmt,
                    "since": period.since.isoformat(),
                    "until": period.until.isoformat(),
                    **({"filter": f.as_dict()} if f.as_dict() else {}),
                },
            )


def _title(title: str, tenant_id: str, period: Period, f: ReportFilter) -> str:
    span = (
        "all time"
        if period == ALL_TIME
        else f"{period.since.isoformat(timespec='seconds')} to {period.until.isoformat(timespec='seconds')}"
    )
    narrowed = "".join(f" - {k} {v}" for k, v in f.as_dict().items())
    return f"Sealmail {title.lower()} - tenant {tenant_id} - {span}{narrowed}"
