"""What the worker does for evidence on a schedule: anchor the audit chain once per
period, and run the retention purge.

Several worker processes may run this at once.  An anchor names its period (the start of
the hour, by default) and ``audit_anchors.period`` is unique, so however many workers tick,
one anchor per period is stored (and mailed, signed, to each tenant's named compliance
officers): the others get a ``Conflict`` (or the unique index's
``IntegrityError`` when two race past the check) and move on.  The purge is idempotent by
construction (``retention_purges`` records what is done).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from sealmail.errors import Conflict
from sealmail.evidence.anchors import Anchors
from sealmail.evidence.service import Evidence
from sealmail.store import db

log = structlog.get_logger("sealmail.evidence")
ACTOR = "system:evidence"


@dataclass(frozen=True, slots=True)
class Ticked:
    anchored: str | None  # the period anchored by this tick, if any
    purged_tenants: int


def period_of(now: datetime, every: timedelta) -> str:
    """The period ``now`` falls in, named by its start (UTC), e.g. ``2026-12-04T03:00``."""
    seconds = int(every.total_seconds())
    epoch = int(now.astimezone(UTC).timestamp())
    start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    return start.strftime("%Y-%m-%dT%H:%M")


class EvidenceSchedule:
    def __init__(
        self, evidence: Evidence, anchor_every: timedelta | None, purge_every: timedelta | None
    ) -> None:
        self.evidence = evidence
        self.anchor_every = anchor_every
        self.purge_every = purge_every
        self._last_purge: datetime | None = None

    def tick(self, now: datetime | None = None) -> Ticked:
        """Anchor if this period has no anchor yet; purge if this process has not lately."""
        now = now or datetime.now(UTC)
        anchored = self._anchor(now) if self.anchor_every else None
        purged = 0
        every = self.purge_every
        if every is not None and (self._last_purge is None or now - self._last_purge >= every):
            self._last_purge = now
            for tenant_id in self.evidence.retention.tenants():
                self.evidence.retention.purge(tenant_id, ACTOR, now, audit_idle=False)
                purged += 1
        return Ticked(anchored, purged)

    def _anchor(self, now: datetime) -> str | None:
        assert self.anchor_every is not None
        period = period_of(now, self.anchor_every)
        with db.reader(self.evidence.engine) as conn:
            if Anchors.of_period(conn, period):
                return None  # the cheap check every tick makes; the unique index is the real guard
        try:
            doc = self.evidence.anchor(ACTOR, period, unstamped_if_tsa_down=True)
        except (Conflict, IntegrityError):
            return None  # already anchored (by this or another worker), or nothing to anchor
        # Only the worker that stored this period's anchor gets here; each address is also
        # claimed in anchor_mailings, so the anchor is mailed once per recipient.
        mailed = self.evidence.anchor_recipients.mail(doc)
        log.info("evidence.anchored", period=period, mailed=len(mailed))
        if self.evidence.anchors.tsa is not None and "timestamp" not in doc:
            log.warning(
                "evidence.anchor_unstamped", period=period, next_step="check tsa_url and the TSA's status"
            )
        return period
