"""``sealmail restore``: a backup loaded into an empty database, then the audit chain re-verified.

The target is brought to the backup's schema revision, every row is inserted in one
transaction (parents first), the schema is then upgraded to this build's head, and the audit
chain is walked from genesis: a restore "succeeds" only when the chain verifies and its head
is the one the backup recorded.  Each member is checked against the manifest's SHA-256 before
anything is written and again as it is read, so a backup altered after it was made is refused,
not half-loaded (the one transaction rolls back).

Table files are streamed: read ``chunk_bytes`` at a time, inserted ``BATCH`` rows (or
``BATCH_BYTES`` of the file) at a time, so memory holds one chunk, one batch and one row — never
a whole table, however large.  Content stays
ciphertext throughout; reading it needs the master key ring restored beside the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.errors import Conflict, InvalidRequest
from sealmail.evidence.backup import BATCH, Manifest, data_tables, decode, read_manifest
from sealmail.store import db, migrate
from sealmail.store.tables import audit_head

CHUNK_BYTES = 1 << 20  # read from the archive this much at a time
BATCH_BYTES = 4 << 20  # at most this much of the file in one insert batch (besides BATCH rows)
# One row of a table file (one JSON line) larger than this is a damaged or hostile backup:
# refused before it is held in memory whole.
MAX_ROW_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RestoreResult:
    rows: int
    blobs: int
    audit_entries: int
    chain_ok: bool
    head_matches: bool
    problem: str

    @property
    def ok(self) -> bool:
        return self.chain_ok and self.head_matches


def _check_empty(engine: Engine, tables: Sequence[sa.Table]) -> None:
    names = set(sa.inspect(engine).get_table_names())
    with db.reader(engine) as conn:
        for table in tables:
            if (
                table.name in names
                and conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
            ):
                raise Conflict(f"restore needs an empty database: table {table.name} has rows")


def _lines(archive: zipfile.ZipFile, name: str, manifest: Manifest, chunk_bytes: int) -> Iterator[bytes]:
    """The member's lines, read ``chunk_bytes`` at a time; its SHA-256 checked at the end."""
    digest = hashlib.sha256()
    tail = b""
    with archive.open(name) as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
            *lines, tail = (tail + chunk).split(b"\n")
            if len(tail) > MAX_ROW_BYTES:
                raise InvalidRequest(f"backup damaged: a row of {name} is over {MAX_ROW_BYTES} bytes")
            yield from (line for line in lines if line)
    if tail:
        yield tail
    if digest.hexdigest() != manifest.members.get(name):
        raise InvalidRequest(f"backup altered: {name} does not match its SHA-256 in backup.json")


def _load_table(conn: Connection, table: sa.Table, columns: list[str], lines: Iterable[bytes]) -> int:
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise InvalidRequest(f"backup has column {table.name}.{unknown[0]}, unknown to this schema")
    cols = [table.c[name] for name in columns]
    target = table
    batch: list[dict[str, Any]] = []
    count = 0
    held = 0
    for line in lines:
        values = json.loads(line)
        batch.append({c.name: decode(c, v) for c, v in zip(cols, values, strict=True)})
        held += len(line)
        # Rows or bytes, whichever fills first: a batch of large rows (content, file chunks)
        # stays as small in memory as a batch of small ones.
        if len(batch) >= BATCH or held >= BATCH_BYTES:
            conn.execute(sa.insert(target), batch)
            count, batch, held = count + len(batch), [], 0
    if batch:
        conn.execute(sa.insert(target), batch)
        count += len(batch)
    return count


def _reset_sequences(conn: Connection, tables: Sequence[sa.Table]) -> None:
    """PostgreSQL: serial columns continue after the restored ids."""
    for table in tables:
        column = table.autoincrement_column
        if column is None:
            continue
        following = sa.select(sa.func.coalesce(sa.func.max(column), 0) + 1).scalar_subquery()
        sequence = sa.func.pg_get_serial_sequence(table.name, column.name)
        conn.execute(sa.select(sa.func.setval(sequence, following, False)))


def _check_members(archive: zipfile.ZipFile, manifest: Manifest, blob_root: Path | None) -> None:
    """Every member against its SHA-256 and every blob path, before anything is written."""
    for name, expected in manifest.members.items():
        if name.startswith("blobs/") and blob_root is not None:
            _blob_target(blob_root, name)
        digest = hashlib.sha256()
        with archive.open(name) as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise InvalidRequest(f"backup altered: {name} does not match its SHA-256 in backup.json")


def _blob_target(root: Path, name: str) -> Path:
    relative = name.removeprefix("blobs/")
    target = (root / relative).resolve()
    if ".." in relative.split("/") or not target.is_relative_to(root.resolve()):
        raise InvalidRequest(f"backup altered: {name} escapes the blob directory")
    return target


def _restore_blobs(archive: zipfile.ZipFile, manifest: Manifest, root: Path | None) -> int:
    names = [n for n in manifest.members if n.startswith("blobs/")]
    if names and root is None:
        raise InvalidRequest("the backup holds file chunks: give the blob directory to restore them into")
    targets = {name: _blob_target(root, name) for name in names if root is not None}
    count = 0
    for name, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        digest = hashlib.sha256()
        with open(fd, "wb") as fh, archive.open(name) as src:
            while chunk := src.read(CHUNK_BYTES):
                digest.update(chunk)
                fh.write(chunk)
        if digest.hexdigest() != manifest.members.get(name):
            target.unlink()
            raise InvalidRequest(f"backup altered: {name} does not match its SHA-256 in backup.json")
        count += 1
    return count


def restore(
    engine: Engine,
    tables: Sequence[sa.Table],
    path: Path,
    blob_root: Path | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> RestoreResult:
    """Load the backup at ``path`` into the empty database behind ``engine``; verify the chain."""
    with zipfile.ZipFile(path) as archive:
        manifest = read_manifest(archive)
        unknown = set(manifest.members) - set(archive.namelist())
        if unknown:
            raise InvalidRequest(f"backup incomplete: {sorted(unknown)[0]} is missing")
        _check_members(archive, manifest, blob_root)
        revision = manifest.schema_revision
        try:
            migrate.upgrade(engine, revision if revision and "," not in revision else "heads")
        except Exception as exc:  # alembic raises several kinds for an unknown revision
            raise InvalidRequest(
                f"the backup's schema revision {revision} is unknown to this Sealmail: "
                "restore with the version that made it"
            ) from exc
        tables = data_tables(tables)
        _check_empty(engine, tables)
        rows = 0
        with engine.begin() as conn:
            for table in tables:
                name = f"tables/{table.name}.jsonl"
                if name in manifest.members:
                    lines = _lines(archive, name, manifest, chunk_bytes)
                    rows += _load_table(conn, table, manifest.columns[table.name], lines)
            if not db.is_sqlite(engine):
                _reset_sequences(conn, tables)
        blobs = _restore_blobs(archive, manifest, blob_root)
    migrate.upgrade(engine)
    checked = audit.verify(engine)
    head = manifest.audit_head or (0, audit.GENESIS)
    with db.reader(engine) as conn:
        now = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
    restored = (int(now.seq), str(now.hash)) if now else (0, audit.GENESIS)
    matches = restored == head
    problem = checked.problem or ("" if matches else "the audit head differs from the backup's")
    return RestoreResult(rows, blobs, checked.checked, checked.ok, matches, problem)
