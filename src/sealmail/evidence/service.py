"""The evidence feature as one object the composition root builds and hands out."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.evidence.anchors import Anchors
from sealmail.evidence.keys import EvidenceKeys
from sealmail.evidence.mailing import AnchorMailer
from sealmail.evidence.proofs import Proofs
from sealmail.evidence.reports import Period, delivery_csv, delivery_pdf
from sealmail.tenancy.keyring import Keyring


class Evidence:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        site_key: Callable[[str], bytes],
        mailer: AnchorMailer | None = None,
    ) -> None:
        self.engine = engine
        self.mailer = mailer
        self.keys = EvidenceKeys(engine, keyring, site_key)
        self.proofs = Proofs(engine, keyring, self.keys)
        self.anchors = Anchors(engine, self.keys)

    def delivery_report(self, tenant_id: str, period: Period, actor: str) -> str:
        """The delivery report as CSV; exporting it is audited (who took what, for which period)."""
        self._exported(tenant_id, period, actor, "csv")
        return delivery_csv(self.engine, tenant_id, period)

    def delivery_report_pdf(self, tenant_id: str, period: Period, actor: str) -> bytes:
        self._exported(tenant_id, period, actor, "pdf")
        return delivery_pdf(self.engine, tenant_id, period)

    def _exported(self, tenant_id: str, period: Period, actor: str, fmt: str) -> None:
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.REPORT_EXPORTED,
                actor=actor,
                tenant_id=tenant_id,
                details={
                    "report": "delivery",
                    "format": fmt,
                    "since": period.since.isoformat(),
                    "until": period.until.isoformat(),
                },
            )
