"""Anchors of the audit chain: its head, signed by the installation, kept apart from it.

The hash chain (``sealmail.audit``) shows that entries were edited, inserted or deleted —
unless whoever edits also recomputes every later hash, which a database administrator
can.  An anchor records the head (sequence number and hash) at a moment, signed with the
installation's evidence key, whose seed is wrapped by the master key and so is not in the
database.  A history rewritten before an anchor no longer produces the anchored hash at
that sequence number; an anchor forged or edited no longer verifies.  Handing each
anchor to someone outside the database (the compliance officer) also defeats deleting
anchors.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import Conflict, ServiceUnavailable
from sealmail.evidence import signed
from sealmail.evidence.keys import EvidenceKeys
from sealmail.evidence.tables import audit_anchors
from sealmail.evidence.timestamps import Timestamper
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import audit_head, audit_log

FORMAT = "sealmail-audit-anchor/1"


@dataclass
class AnchoredResult:
    """The chain and every anchor checked; ``problems`` names each failure."""

    chain: audit.VerifyResult
    anchors: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems


class Anchors:
    def __init__(self, engine: Engine, keys: EvidenceKeys, tsa: Timestamper | None = None) -> None:
        self.engine = engine
        self.keys = keys
        self.tsa = tsa

    def anchor(
        self, actor: str, period: str | None = None, *, unstamped_if_tsa_down: bool = False
    ) -> dict[str, Any]:
        """Sign the current chain head, store the anchor, audit it; returns the signed document.

        ``period`` names a scheduled anchor's period: a second anchor for the same period
        (another worker, a retry) is a ``Conflict`` and leaves nothing behind.  With a TSA,
        the document is time-stamped before it is stored (outside the transaction: the TSA
        is a network call, and the head lock must not wait on it).  A TSA that cannot answer
        fails the anchor, unless ``unstamped_if_tsa_down`` (the schedule): then the signed
        anchor is stored and mailed without its time-stamp, and the audit entry says why — a
        TSA outage must not leave whole periods unanchored.
        """
        key = self.keys.installation()
        with db.reader(self.engine) as conn:
            head = conn.execute(
                sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            ).first()
            if period is not None and self.of_period(conn, period):
                raise Conflict(f"the audit chain is already anchored for {period}")
        if head is None or int(head.seq) == 0:
            raise Conflict("the audit log is empty: there is nothing to anchor yet")
        now = datetime.now(UTC)
        anchor_id = new_id("anc")
        body = {
            "anchor_id": anchor_id,
            "seq": int(head.seq),
            "head_hash": str(head.hash),
            "anchored_at": now.isoformat(timespec="seconds"),
        }
        doc = signed.sign(FORMAT, body, key)
        missed: str | None = None
        if self.tsa is not None:
            try:
                doc = self.tsa.stamp(doc)
            except ServiceUnavailable as exc:
                if not unstamped_if_tsa_down:
                    raise
                missed = str(exc)[:300]
        with self.engine.begin() as conn:
            if period is not None and self.of_period(conn, period):
                raise Conflict(f"the audit chain is already anchored for {period}")
            conn.execute(
                sa.insert(audit_anchors).values(
                    id=anchor_id,
                    seq=int(head.seq),
                    head_hash=str(head.hash),
                    created_at=now,
                    key_fingerprint=doc["signature"]["key_fingerprint"],
                    document=doc,
                    period=period,
                    timestamp_token=base64.b64decode(doc["timestamp"]["token"])
                    if "timestamp" in doc
                    else None,
                )
            )
            audit.append(
                conn,
                action=AuditAction.AUDIT_ANCHORED,
                actor=actor,
                target=anchor_id,
                details={"seq": int(head.seq), "head_hash": str(head.hash), "period": period}
                | ({"timestamp_missing": missed} if missed else {}),
            )
        return doc

    @staticmethod
    def of_period(conn: sa.Connection, period: str) -> bool:
        found = conn.execute(sa.select(audit_anchors.c.id).where(audit_anchors.c.period == period)).first()
        return found is not None

    def verify(self, progress: Callable[[int], None] | None = None) -> AnchoredResult:
        """The chain walk of ``audit.verify``, then every anchor against the entries it covers."""
        result = AnchoredResult(audit.verify(self.engine, progress))
        with db.reader(self.engine) as conn:
            rows = conn.execute(sa.select(audit_anchors).order_by(audit_anchors.c.seq)).all()
            if not rows:
                return result  # nothing to check, and no key to create just for looking
            trusted = signed.key_fingerprint(self.keys.installation().public_key())
            for row in rows:
                result.anchors += 1
                result.problems.extend(self._check(conn, row, trusted))
        return result

    @staticmethod
    def _check(conn: sa.Connection, row: Any, trusted: str) -> list[str]:
        verdict = signed.verify(row.document, trusted)
        if not verdict.ok:
            return [f"anchor {row.id}: {p}" for p in verdict.problems]
        body = row.document["body"]
        seq, anchored = int(body["seq"]), str(body["head_hash"])
        found = conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == seq)).scalar()
        if found is None:
            return [f"anchor {row.id}: entry {seq} it anchors is missing (history deleted)"]
        if found != anchored:
            return [
                f"anchor {row.id}: entry {seq} no longer has the anchored hash (history before it rewritten)"
            ]
        return []
