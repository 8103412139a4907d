"""Exporting a tenant's audit log: CSV for spreadsheets, and a signed JSON document that
``sealmail audit verify FILE`` checks offline.

The signed export is an evidence document (``evidence/signed.py``) signed with the
tenant's Ed25519 evidence key.  Its entries are keyed by sequence number, so the signed
manifest holds a digest per entry field and a verifier names the exact field altered; each
entry also carries its chain hashes, re-computed offline (``audit.digest_of``), so an
entry edited in the database before the export no longer matches its own chain hash.
Every export is itself audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.evidence import signed
from sealmail.store import db
from sealmail.store.tables import audit_log
from sealmail.suppressions.export import csv_line

FORMAT = "sealmail.audit-export.v1"
MAX_ENTRIES = 20_000
CSV_COLUMNS = ("seq", "at", "actor", "action", "target", "details", "hash")


@dataclass(frozen=True, slots=True)
class Filters:
    action: str = ""
    actor: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def describe(self) -> dict[str, str]:
        out = {"action": self.action, "actor": self.actor}
        out["since"] = self.since.isoformat() if self.since else ""
        out["until"] = self.until.isoformat() if self.until else ""
        return {k: v for k, v in out.items() if v}


class AuditExport:
    def __init__(self, engine: Engine, tenant_key: Callable[[str], Ed25519PrivateKey]) -> None:
        self.engine = engine
        self.tenant_key = tenant_key

    def _entries(self, tenant_id: str, f: Filters) -> list[dict[str, Any]]:
        stmt = sa.select(audit_log).where(audit_log.c.tenant_id == tenant_id)
        if f.action:
            stmt = stmt.where(audit_log.c.action == f.action)
        if f.actor:
            stmt = stmt.where(audit_log.c.actor == f.actor)
        if f.since:
            stmt = stmt.where(audit_log.c.at >= f.since)
        if f.until:
            stmt = stmt.where(audit_log.c.at < f.until)
        with db.reader(self.engine) as conn:
            rows = conn.execute(stmt.order_by(audit_log.c.seq).limit(MAX_ENTRIES)).mappings().all()
        return [{**r, "at": audit.at_text(r["at"])} for r in rows]

    def _exported(self, tenant_id: str, actor: str, fmt: str, f: Filters, count: int) -> None:
        with self.engine.begin() as conn:
            audit.append(
                conn, action=AuditAction.AUDIT_EXPORTED, actor=actor, tenant_id=tenant_id,
                details={"format": fmt, "entries": count, "filters": f.describe()},
            )  # fmt: skip

    def csv(self, tenant_id: str, actor: str, f: Filters) -> str:
        rows = self._entries(tenant_id, f)
        text = csv_line(CSV_COLUMNS) + "".join(
            csv_line([str(r["seq"]), r["at"], r["actor"], r["action"], r["target"] or "",
                      signed.canonical(r["details"]).decode(), r["hash"]])
            for r in rows
        )  # fmt: skip
        self._exported(tenant_id, actor, "csv", f, len(rows))
        return text

    def signed_json(self, tenant_id: str, actor: str, f: Filters) -> dict[str, Any]:
        rows = self._entries(tenant_id, f)
        body = {
            "tenant_id": tenant_id,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exported_by": actor,
            "filters": f.describe() or {"all": "entries"},
            "count": len(rows),
            "truncated": len(rows) == MAX_ENTRIES,
            # Keyed by zero-padded seq: the manifest then signs every field of every entry.
            "entries": {f"{r['seq']:012d}": {k: r[k] for k in ENTRY_FIELDS} for r in rows},
        }
        doc = signed.sign(FORMAT, body, self.tenant_key(tenant_id))
        self._exported(tenant_id, actor, "json", f, len(rows))
        return doc


ENTRY_FIELDS = ("seq", "id", "tenant_id", "at", "actor", "action", "target", "details", "prev_hash", "hash")


def verify_export(doc: Any, trusted_fingerprint: str | None = None) -> signed.Verdict:
    """The signature and manifest (``signed.verify``), then each entry against its chain hash."""
    verdict = signed.verify(doc, trusted_fingerprint)
    if verdict.format and verdict.format != FORMAT:
        verdict.problems.append(f"format: {verdict.format} is not an audit export ({FORMAT})")
        return verdict
    body = doc.get("body") if isinstance(doc, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("entries"), dict):
        return verdict
    entries: dict[str, Any] = body["entries"]
    for key, entry in sorted(entries.items()):
        if not isinstance(entry, dict) or set(entry) != set(ENTRY_FIELDS):
            verdict.problems.append(f"body.entries.{key}: not an audit entry")
            continue
        if entry["tenant_id"] != body.get("tenant_id"):
            verdict.problems.append(f"body.entries.{key}: belongs to another tenant")
        try:
            intact = audit.digest_of(str(entry["prev_hash"]), entry) == entry["hash"]
        except (TypeError, ValueError):
            intact = False
        if not intact:
            verdict.problems.append(f"body.entries.{key}: does not match its audit-chain hash")
    return verdict
