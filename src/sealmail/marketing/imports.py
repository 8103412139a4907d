"""Contact imports: CSV (or API rows) streamed in chunks, upsert by email, a per-row report.

The input is read a chunk at a time and each chunk is one transaction: memory depends on
the chunk, not the file.  A row that fails validation is reported by its number (the
header is row 1, so the first contact is row 2) and column, never its value, and nothing
of it is stored; the other rows go in.  Limits: ``MAX_ROWS`` rows, ``MAX_LINE`` characters
a field, ``MAX_COLUMNS`` columns; past them the import stops with what was committed.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.marketing import attributes as attrs
from sealmail.marketing.contacts import Clean, ContactData, Contacts, Validator
from sealmail.marketing.states import ImportStatus
from sealmail.marketing.tables import mkt_contacts, mkt_import_errors, mkt_imports
from sealmail.store import db

CHUNK = 1000
MAX_ROWS = 2_000_000
MAX_COLUMNS = 120
MAX_FIELD = 2000
MAX_STORED_ERRORS = 10_000
ANALYZE_AFTER = 10_000  # new contacts in one import
BASE_COLUMNS = ("email", "phone", "tz", "status")

Progress = Callable[[int], None]


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, ContactData | str]]:
    """(row number, contact) per CSV line, or (row number, problem) for a malformed one.

    The header names the columns: ``email`` (required), ``phone``, ``tz``, ``status``, and
    any declared attribute.  Cells longer than ``MAX_FIELD`` stop the parse (csv raises).
    """
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed(
            [{"field": "file", "message": "is empty; the first line names the columns"}]
        ) from None
    _check_header(header)
    width = len(header)
    email_at = header.index("email")
    phone_at, tz_at, status_at = (header.index(n) if n in header else None for n in BASE_COLUMNS[1:])
    extra_at = [(i, name) for i, name in enumerate(header) if name not in BASE_COLUMNS]
    for number, cells in _guarded(reader):
        # The blank-row test only for a row that could be one: most rows have an email.
        if (len(cells) != width or not cells[email_at].strip()) and not any(c.strip() for c in cells):
            continue
        if len(cells) != width:
            yield number, f"has {len(cells)} cells, the header has {width}"
            continue
        extra = {name: cells[i] for i, name in extra_at if cells[i].strip()}
        yield (
            number,
            ContactData(
                cells[email_at],
                None if phone_at is None else cells[phone_at],
                None if tz_at is None else cells[tz_at],
                None if status_at is None else cells[status_at],
                extra,
            ),
        )


def _guarded(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    number = 1
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The parser cannot resynchronise after a broken quote or an oversized cell.
            raise ValidationFailed([{"field": f"row {number}", "message": f"malformed CSV ({exc})"}]) from exc
        yield number, cells


def _check_header(header: list[str]) -> None:
    problems = []
    if "email" not in header:
        problems.append({"field": "header", "message": "needs an email column"})
    if len(header) > MAX_COLUMNS:
        problems.append({"field": "header", "message": f"at most {MAX_COLUMNS} columns"})
    if len(set(header)) != len(header):
        problems.append({"field": "header", "message": "names a column twice"})
    if problems:
        raise ValidationFailed(problems)


class Importer:
    def __init__(self, engine: Engine, contacts: Contacts) -> None:
        self.engine = engine
        self.contacts = contacts

    def run(
        self,
        tenant_id: str,
        rows: Iterable[tuple[int, ContactData | str]],
        *,
        actor: str,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Import every row, chunk by chunk; the summary and the first page of errors."""
        import_id = new_id("imp")
        now = datetime.now(UTC)
        self.contacts.blind_key(tenant_id)
        with db.write(self.engine) as conn:
            # Declarations only grow and never change type: read once, they hold for the import.
            check = Validator(attrs.load(conn, tenant_id))
            conn.execute(
                sa.insert(mkt_imports).values(
                    id=import_id,
                    tenant_id=tenant_id,
                    status=ImportStatus.PROCESSING,
                    rows=0,
                    created=0,
                    updated=0,
                    failed=0,
                    created_by=actor[:80],
                    created_at=now,
                )
            )
        tally = {"rows": 0, "created": 0, "updated": 0, "failed": 0, "stored_errors": 0}
        status = ImportStatus.FAILED
        try:
            it = iter(rows)
            while chunk := list(islice(it, CHUNK)):
                if tally["rows"] + len(chunk) > MAX_ROWS:
                    raise ValidationFailed(
                        [{"field": "file", "message": f"at most {MAX_ROWS} rows an import"}]
                    )
                tally["rows"] += len(chunk)
                self._chunk(tenant_id, import_id, _checked(check, chunk), tally)
                if progress is not None:
                    progress(len(chunk))
            status = ImportStatus.COMPLETED
        finally:
            self._finish(tenant_id, import_id, status, tally, actor)
        if tally["created"] >= ANALYZE_AFTER:
            db.analyze(self.engine, mkt_contacts)  # segment counts plan on fresh statistics
        return self.get(tenant_id, import_id)

    def _chunk(
        self,
        tenant_id: str,
        import_id: str,
        checked: tuple[list[Clean], list[dict[str, Any]]],
        tally: dict[str, int],
    ) -> None:
        """One chunk's good rows and its error report, one transaction."""
        good, errors = checked
        with db.write(self.engine) as conn:
            # Distinct contacts: two rows for one email in a chunk are one upsert.
            written = set(self.contacts.write(conn, tenant_id, good)) if good else set()
            created = sum(1 for _, new in written if new)
            tally["created"] += created
            tally["updated"] += len(written) - created
            tally["failed"] += len({e["row"] for e in errors})
            room = max(0, MAX_STORED_ERRORS - tally["stored_errors"])
            if errors and room:
                conn.execute(
                    sa.insert(mkt_import_errors),
                    [_error_row(tenant_id, import_id, e, i) for i, e in enumerate(errors[:room])],
                )
                tally["stored_errors"] += min(room, len(errors))
            conn.execute(sa.update(mkt_imports).where(mkt_imports.c.id == import_id).values(**_counts(tally)))

    def _finish(
        self, tenant_id: str, import_id: str, status: ImportStatus, tally: dict[str, int], actor: str
    ) -> None:
        with db.write(self.engine) as conn:
            conn.execute(
                sa.update(mkt_imports)
                .where(mkt_imports.c.id == import_id)
                .values(status=status, finished_at=datetime.now(UTC), **_counts(tally))
            )
            audit.append(
                conn,
                action=AuditAction.MKT_CONTACTS_IMPORTED,
                actor=actor,
                tenant_id=tenant_id,
                target=import_id,
                details={"status": status, **_counts(tally)},
            )

    def get(self, tenant_id: str, import_id: str, *, limit: int = 100) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            job = conn.execute(
                sa.select(mkt_imports).where(
                    mkt_imports.c.id == import_id, mkt_imports.c.tenant_id == tenant_id
                )
            ).first()
            if job is None:
                raise NotFound(f"no import {import_id!r}")
            errors = conn.execute(
                sa.select(mkt_import_errors)
                .where(mkt_import_errors.c.import_id == import_id)
                .order_by(mkt_import_errors.c.row, mkt_import_errors.c.seq)
                .limit(limit)
            ).all()
        return {
            "id": job.id,
            "status": job.status,
            "rows": job.rows,
            "created": job.created,
            "updated": job.updated,
            "failed": job.failed,
            "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in errors],
        }


def _checked(
    check: Validator, chunk: list[tuple[int, ContactData | str]]
) -> tuple[list[Clean], list[dict[str, Any]]]:
    """A chunk validated outside any transaction: its clean rows and its errors by row."""
    errors: list[dict[str, Any]] = []
    good: list[Clean] = []
    for number, item in chunk:
        if isinstance(item, str):
            errors.append({"row": number, "field": "row", "message": item})
            continue
        clean, problems = check(item)
        if clean is None:
            errors += [{"row": number, **p} for p in problems]
        else:
            good.append(clean)
    return good, errors


def _counts(tally: dict[str, int]) -> dict[str, int]:
    return {k: tally[k] for k in ("rows", "created", "updated", "failed")}


def _error_row(tenant_id: str, import_id: str, e: dict[str, Any], seq: int) -> dict[str, Any]:
    return {
        "import_id": import_id,
        "row": e["row"],
        "seq": seq,
        "tenant_id": tenant_id,
        "field": str(e["field"])[:60],
        "message": str(e["message"])[:300],
    }
