"""``sealmail backup``: one consistent, engine-neutral copy of the database and the blob store.

A backup is a zip:

    backup.json                  the manifest: format, source engine, schema revision, the audit
                                 head (seq + hash), the recovery point, rows per table, SHA-256
                                 of every other member
    tables/<table>.jsonl         one JSON array per row, columns in the order the manifest names
    blobs/<key>                  the blob store's files (already ciphertext)

Every table is read inside one snapshot (``REPEATABLE READ`` on PostgreSQL; one read
transaction on SQLite in WAL mode), so the copy is what a single committed moment held.
Values are written as stored: message content, file chunks and wrapped keys stay ciphertext,
and the master key ring is **not** in the backup — it is kept apart (164.304 and HHS's
safe-harbour guidance: the key must not travel with the data) and restored beside it.
Because rows are JSON, a SQLite backup restores into PostgreSQL and the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail.errors import InvalidRequest
from sealmail.store import db, migrate
from sealmail.store.tables import audit_head, audit_log

FORMAT = "sealmail-backup/1"
MANIFEST = "backup.json"
BATCH = 1000


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What a backup holds, as its manifest says."""

    path: Path
    engine: str
    schema_revision: str | None
    created_at: str
    recovery_point: str | None  # time of the last committed audit entry in the backup
    audit_seq: int
    audit_hash: str
    tables: dict[str, int]
    blobs: int
    sha256: str  # of the whole file


def encode(value: Any) -> Any:
    """A stored value as JSON: bytes as base64, times as ISO 8601 (UTC)."""
    if value is None:
        return None
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def decode(column: sa.ColumnClause[Any], value: Any) -> Any:
    """The inverse of ``encode``, by the column's type."""
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, sa.LargeBinary):
        return base64.b64decode(value)
    if isinstance(kind, sa.types.TypeDecorator) and isinstance(kind.impl_instance, sa.DateTime):
        return datetime.fromisoformat(value)
    if isinstance(kind, sa.DateTime):
        return datetime.fromisoformat(value)
    if isinstance(kind, sa.Date):
        return date.fromisoformat(value)
    return value


def _snapshot(engine: Engine) -> Connection:
    if db.is_sqlite(engine):
        return db.reader(engine)
    return engine.connect().execution_options(isolation_level="REPEATABLE READ")


def _rows(conn: Connection, table: sa.Table) -> Iterator[bytes]:
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(yield_per=BATCH).execute(sa.select(table).order_by(*order))
    for row in result:
        values = [encode(v) for v in row]
        yield json.dumps(values, separators=(",", ":"), default=str).encode() + b"\n"


def _write_member(archive: zipfile.ZipFile, name: str, chunks: Iterator[bytes]) -> tuple[str, int]:
    digest, count = hashlib.sha256(), 0
    with archive.open(name, "w", force_zip64=True) as fh:
        for chunk in chunks:
            digest.update(chunk)
            fh.write(chunk)
            count += 1
    return digest.hexdigest(), count


def _blob_files(root: Path | None) -> list[Path]:
    if root is None or not root.is_dir():
        return []
    # Half-written puts are temporary files beside the blob; they are not blobs.
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def data_tables(tables: Sequence[sa.Table]) -> list[sa.Table]:
    """The tables that hold data: not the schema's own fixtures (``info["fixture"]``, such as
    the key directory's change counter, which every migrated database has and keeps counting)."""
    return [t for t in tables if not t.info.get("fixture")]


def create(
    engine: Engine, tables: Sequence[sa.Table], path: Path, blob_root: Path | None = None
) -> BackupSummary:
    """Write a backup of ``tables`` (every table of the schema, parents first; one snapshot)
    and every blob to ``path`` (created 0600: it names patients' addresses)."""
    try:
        path.touch(mode=0o600, exist_ok=False)
    except FileExistsError as exc:
        raise InvalidRequest(f"{path} exists: a backup never overwrites a file") from exc
    members: dict[str, str] = {}
    counts: dict[str, int] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, _snapshot(engine) as conn:
        with conn.begin():
            head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
            last_at = conn.execute(sa.select(sa.func.max(audit_log.c.at))).scalar()
            for table in data_tables(tables):
                name = f"tables/{table.name}.jsonl"
                members[name], counts[table.name] = _write_member(archive, name, _rows(conn, table))
        blobs = _blob_files(blob_root)
        for file in blobs:
            assert blob_root is not None
            name = "blobs/" + file.relative_to(blob_root).as_posix()
            members[name], _ = _write_member(archive, name, iter([file.read_bytes()]))
        manifest = {
            "format": FORMAT,
            "engine": engine.dialect.name,
            "schema_revision": migrate.current_revision(engine),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "recovery_point": encode(last_at),
            "audit_head": {"seq": int(head.seq), "hash": str(head.hash)} if head else None,
            "columns": {t.name: [c.name for c in t.columns] for t in tables},
            "tables": counts,
            "blobs": len(blobs),
            "members": members,
        }
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return summary(path)


@dataclass(frozen=True, slots=True)
class Manifest:
    """``backup.json`` as restore reads it."""

    schema_revision: str | None
    columns: dict[str, list[str]]
    members: dict[str, str]
    audit_head: tuple[int, str] | None


def _manifest_doc(archive: zipfile.ZipFile) -> Any:
    try:
        doc = json.loads(archive.read(MANIFEST))
    except KeyError as exc:
        raise InvalidRequest("not a Sealmail backup: backup.json is missing") from exc
    except ValueError as exc:
        raise InvalidRequest("not a Sealmail backup: backup.json is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidRequest(f"not a Sealmail backup: format is not {FORMAT}")
    return doc


def read_manifest(archive: zipfile.ZipFile) -> Manifest:
    doc = _manifest_doc(archive)
    head = doc.get("audit_head")
    return Manifest(
        schema_revision=doc.get("schema_revision"),
        columns={str(k): list(v) for k, v in doc["columns"].items()},
        members={str(k): str(v) for k, v in doc["members"].items()},
        audit_head=(int(head["seq"]), str(head["hash"])) if head else None,
    )


def summary(path: Path) -> BackupSummary:
    with zipfile.ZipFile(path) as archive:
        doc = _manifest_doc(archive)
    head = doc.get("audit_head") or {"seq": 0, "hash": ""}
    return BackupSummary(
        path=path,
        engine=str(doc["engine"]),
        schema_revision=doc.get("schema_revision"),
        created_at=str(doc["created_at"]),
        recovery_point=doc.get("recovery_point"),
        audit_seq=int(head["seq"]),
        audit_hash=str(head["hash"]),
        tables=dict(doc["tables"]),
        blobs=int(doc.get("blobs", 0)),
        sha256=file_sha256(path),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
