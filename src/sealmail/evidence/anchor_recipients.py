"""Who receives each scheduled audit anchor (and each evidence alert) by mail, and the mailing.

A tenant names its compliance officer(s); each anchor the schedule stores is then queued,
signed, to every one of them: a copy of the chain head outside the database, in a mailbox a
database administrator does not control.  ``anchor_mailings`` has one row per anchor, tenant
and address, claimed *before* the mail is queued, so several workers ticking at once still
mail each anchor once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.errors import InvalidRequest
from sealmail.evidence.mailing import AnchorMailer
from sealmail.evidence.tables import anchor_mailings, evidence_settings
from sealmail.store import db

MAX_RECIPIENTS = 5


@dataclass(frozen=True, slots=True)
class Notice:
    """An evidence notice for the compliance officers: PHI-free text and an optional JSON file."""

    subject: str
    text: str
    tag: str
    metadata: dict[str, str] = field(default_factory=dict)
    attachment: tuple[bytes, str] | None = None


def checked(addresses: list[str]) -> list[str]:
    """Parse, lower-case and de-duplicate; a bad address or too many is a 422."""
    if len(addresses) > MAX_RECIPIENTS:
        raise InvalidRequest(f"at most {MAX_RECIPIENTS} anchor recipients")
    out: list[str] = []
    for raw in addresses:
        try:
            spec = parse_address(raw, "anchor_recipients").addr_spec.lower()
        except InvalidAddress as exc:
            raise InvalidRequest(f"anchor_recipients: {exc.reason}") from exc
        if spec not in out:
            out.append(spec)
    return out


class AnchorRecipients:
    def __init__(self, engine: Engine, mailer: AnchorMailer | None) -> None:
        self.engine = engine
        self.mailer = mailer

    def get(self, tenant_id: str) -> list[str]:
        with db.reader(self.engine) as conn:
            value = conn.execute(
                sa.select(evidence_settings.c.anchor_recipients).where(
                    evidence_settings.c.tenant_id == tenant_id
                )
            ).scalar()
        return [a for a in (value or "").split(",") if a]

    def set(self, tenant_id: str, addresses: list[str], actor: str) -> list[str]:
        wanted = checked(addresses)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            before = conn.execute(
                sa.select(evidence_settings.c.anchor_recipients).where(
                    evidence_settings.c.tenant_id == tenant_id
                )
            ).scalar()
            values = {"anchor_recipients": ",".join(wanted), "updated_at": now, "updated_by": actor[:80]}
            if before is None:
                conn.execute(sa.insert(evidence_settings).values(tenant_id=tenant_id, **values))
            else:
                conn.execute(
                    sa.update(evidence_settings)
                    .where(evidence_settings.c.tenant_id == tenant_id)
                    .values(**values)
                )
            audit.append(
                conn,
                action=AuditAction.ANCHOR_RECIPIENTS_SET,
                actor=actor,
                tenant_id=tenant_id,
                target=tenant_id,
                details={"before": [a for a in (before or "").split(",") if a], "after": wanted},
            )
        return wanted

    def mail(self, doc: dict[str, Any]) -> list[str]:
        """Queue ``doc`` (a signed anchor) to every tenant's recipients not yet sent it; returns
        the queued message ids."""
        if self.mailer is None:
            return []
        anchor_id = str(doc["body"]["anchor_id"])
        queued = []
        for tenant_id, address in self._everyone():
            message_id = self._mail_one(anchor_id, tenant_id, address, doc)
            if message_id is not None:
                queued.append(message_id)
        return queued

    def alert(self, notice: Notice) -> list[str]:
        """Queue ``notice`` (e.g. a failed restore drill: installation-wide) to every tenant's
        recipients, each mailing audited; returns the queued message ids.  The caller's own
        once-per-period claim keeps it from going out twice."""
        if self.mailer is None:
            return []
        queued = []
        for tenant_id, address in self._everyone():
            message_id = self.mailer.notify(
                tenant_id,
                address,
                notice.subject,
                notice.text,
                notice.tag,
                notice.metadata,
                notice.attachment,
            )
            with self.engine.begin() as conn:
                audit.append(
                    conn,
                    action=AuditAction.EVIDENCE_ALERT_MAILED,
                    actor="system:evidence",
                    tenant_id=tenant_id,
                    target=notice.tag,
                    details={"to": address, "message_id": message_id, "subject": notice.subject},
                )
            queued.append(message_id)
        return queued

    def _everyone(self) -> list[tuple[str, str]]:
        """(tenant, address) of every tenant's named recipients."""
        with db.reader(self.engine) as conn:
            settings = conn.execute(
                sa.select(evidence_settings.c.tenant_id, evidence_settings.c.anchor_recipients).where(
                    evidence_settings.c.anchor_recipients != ""
                )
            ).all()
        return [(tenant_id, a) for tenant_id, value in settings for a in value.split(",") if a]

    def _mail_one(self, anchor_id: str, tenant_id: str, address: str, doc: dict[str, Any]) -> str | None:
        assert self.mailer is not None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(anchor_mailings).values(
                        anchor_id=anchor_id, tenant_id=tenant_id, address=address, at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            return None  # another worker claimed it: mailed once
        message_id = self.mailer.send(tenant_id, address, doc)
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(anchor_mailings)
                .where(
                    anchor_mailings.c.anchor_id == anchor_id,
                    anchor_mailings.c.tenant_id == tenant_id,
                    anchor_mailings.c.address == address,
                )
                .values(message_id=message_id)
            )
            audit.append(
                conn,
                action=AuditAction.ANCHOR_MAILED,
                actor="system:evidence",
                tenant_id=tenant_id,
                target=anchor_id,
                details={"to": address, "message_id": message_id, "seq": doc["body"]["seq"]},
            )
        return message_id
