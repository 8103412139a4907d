"""Contact imports: CSV (or API rows) streamed in chunks, upsert by email, a per-row report.

The input is read a chunk at a time and each chunk is one transaction: memory depends on
the chunk, not the file.  A row that fails validation is reported by its number (the
header is row 1, so the first contact is row 2) and column, never its value, and nothing
of it is stored; the other rows go in.  Limits: ``MAX_ROWS`` rows, ``MAX_LINE`` characters
a field, ``MAX_COLUMNS`` columns; past them the import stops with what was committed.
"""

from __future__ import annotations

import codecs
import csv
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.numerals import whole_number
from sealmail.errors import NotFound, RateLimited, ValidationFailed
from sealmail.ids import new_id
from sealmail.marketing import attributes as attrs
from sealmail.marketing.contacts import Clean, ContactData, Contacts, Validator
from sealmail.marketing.states import ImportStatus
from sealmail.marketing.tables import mkt_contacts, mkt_import_errors, mkt_imports
from sealmail.store import db
from sealmail.suppressions.export import csv_line, unprotected

CHUNK = 1000
MAX_ROWS = 2_000_000
MAX_COLUMNS = 120
MAX_FIELD = 2000
MAX_STORED_ERRORS = 10_000
# The longest line a row within the limits can have: every cell at MAX_FIELD, quoted, each
# character a doubled quote.  A longer line is refused while it is read: held whole and
# re-split at every block, it cost time quadratic in its length (80 MB: 16 s of CPU).
MAX_LINE = MAX_COLUMNS * (2 * MAX_FIELD + 3)
ANALYZE_AFTER = 10_000  # new contacts in one import
# A chunk commits in well under a second; a processing import silent this long lost its
# process (a restart, a crash) and will not move again.
STALLED_AFTER = timedelta(minutes=5)
# Background imports a tenant may have running at once.  Each holds its upload (up to 512 MB)
# on disk until a worker of the shared pool reaches it: without a cap one tenant could queue
# uploads until the disk filled, and every other tenant's import waited behind them.
MAX_RUNNING = 2
BASE_COLUMNS = ("email", "phone", "tz", "status")

Progress = Callable[[int], None]
log = logging.getLogger(__name__)


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, ContactData | str]]:
    """(row number, contact) per CSV line, or (row number, problem) for a malformed one.

    The header names the columns: ``email`` (required), ``phone``, ``tz``, ``status``, and
    any declared attribute.  Cells longer than ``MAX_FIELD`` stop the parse (csv raises).
    A cell the contact export protected from spreadsheets (``'`` before ``=``, ``+``, ``-``,
    ``@``, tab or CR: a phone, a negative number) is read without the apostrophe, so an
    export imports back as it was.
    """
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(lines)
    # The header goes through the same guard as the rows: a header cell past MAX_FIELD or a
    # bare CR (old Mac line ends) was a csv.Error outside it, a 500 and a background import
    # failed with no reason in its report.
    first = next(_guarded(reader, number=0), None)
    if first is None:
        raise ValidationFailed([{"field": "file", "message": "is empty; the first line names the columns"}])
    header = [h.strip().lower() for h in first[1]]
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
        if "'" in "".join(cells):  # rare: a cell our export protected from spreadsheets
            cells = [unprotected(c) for c in cells]
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


def _guarded(reader: Iterator[list[str]], number: int = 1) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) per record after row ``number``; a parser error is a 422 naming the row."""
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
    """Runs imports: ``run`` in the caller's thread (the CLI, small API batches), ``start_csv``
    in a background thread that the caller does not wait for (the console, ``?background``).

    Progress is the import's row: each chunk's transaction moves ``rows``, ``failed`` and the
    stored errors, so any reader (``get``) sees how far it is without asking the worker.
    """

    def __init__(self, engine: Engine, contacts: Contacts, workers: int = 2) -> None:
        self.engine = engine
        self.contacts = contacts
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def run(
        self,
        tenant_id: str,
        rows: Iterable[tuple[int, ContactData | str]],
        *,
        actor: str,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Import every row, chunk by chunk; the summary and the first page of errors."""
        import_id, check = self._begin(tenant_id, actor, None)
        self._process(tenant_id, import_id, check, rows, actor, progress, keep_refusal=False)
        return self.get(tenant_id, import_id)

    def ensure_room(self, tenant_id: str) -> None:
        """RateLimited (429) while the tenant has ``MAX_RUNNING`` imports moving (a stalled one
        does not count: it will not move again)."""
        with db.reader(self.engine) as conn:
            running = conn.execute(
                sa.select(sa.func.count()).where(
                    mkt_imports.c.tenant_id == tenant_id,
                    mkt_imports.c.status == ImportStatus.PROCESSING,
                    mkt_imports.c.progress_at > datetime.now(UTC) - STALLED_AFTER,
                )
            ).scalar_one()
        if running >= MAX_RUNNING:
            raise RateLimited(
                f"{running} imports are running for this tenant; wait for one to finish "
                "(GET /v1/marketing/imports/{id}) and send the file again",
                {"Retry-After": "30"},
            )

    def start_csv(self, tenant_id: str, spool: BinaryIO, *, actor: str) -> dict[str, Any]:
        """Start importing a CSV file in the background; its import record, at once.

        The importer owns ``spool`` from here and closes it when the import ends.  A file
        the parser refuses part-way (bad header, broken quoting, not UTF-8) ends ``failed``
        with the reason in its error report, since there is no request left to answer.
        """
        try:
            self.ensure_room(tenant_id)
            total = data_lines(spool)
            import_id, check = self._begin(tenant_id, actor, total)
        except BaseException:
            spool.close()
            raise

        def work() -> None:
            try:
                rows = csv_rows(text_lines(spool))
                self._process(tenant_id, import_id, check, rows, actor, None, keep_refusal=True)
            except Exception as exc:  # noqa: BLE001 - the thread has no caller to raise to
                # The type only: a database error's text can carry the row's values (PHI).
                log.error("background import %s stopped: %s", import_id, type(exc).__name__)
            finally:
                spool.close()

        self._executor().submit(work)
        return self.get(tenant_id, import_id)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="mkt-import")
            return self._pool

    def close(self) -> None:
        """Wait for background imports to end (shutdown, tests)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _begin(self, tenant_id: str, actor: str, total: int | None) -> tuple[str, Validator]:
        import_id = new_id("imp")
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
                    total=total,
                    progress_at=datetime.now(UTC),
                    created_by=actor[:80],
                    created_at=datetime.now(UTC),
                )
            )
        return import_id, check

    def _process(
        self,
        tenant_id: str,
        import_id: str,
        check: Validator,
        rows: Iterable[tuple[int, ContactData | str]],
        actor: str,
        progress: Progress | None,
        *,
        keep_refusal: bool,
    ) -> None:
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
        except (ValidationFailed, UnicodeDecodeError) as exc:
            if not keep_refusal:
                raise
            self._refused(tenant_id, import_id, exc, tally)
        finally:
            self._finish(tenant_id, import_id, status, tally, actor)
        if tally["created"] >= ANALYZE_AFTER:
            db.analyze(self.engine, mkt_contacts)  # segment counts plan on fresh statistics

    def _refused(self, tenant_id: str, import_id: str, exc: Exception, tally: dict[str, int]) -> None:
        """Why a background import stopped, as rows of its error report (never a value)."""
        if isinstance(exc, ValidationFailed):
            problems = list(exc.extra.get("errors") or [])
        else:
            problems = [{"field": "file", "message": "is not UTF-8 text"}]
        room = max(0, MAX_STORED_ERRORS - tally["stored_errors"])
        found = [{"row": _row_of(str(p["field"])), **p} for p in problems[: max(room, 1)]]
        with db.write(self.engine) as conn:
            # After every seq the chunks used: (import, row, seq) stays unique.
            top = conn.execute(
                sa.select(sa.func.max(mkt_import_errors.c.seq)).where(
                    mkt_import_errors.c.import_id == import_id
                )
            ).scalar()
            first = (top or 0) + 1
            rows = [_error_row(tenant_id, import_id, e, first + i) for i, e in enumerate(found)]
            conn.execute(sa.insert(mkt_import_errors), rows)
        tally["stored_errors"] += len(rows)

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
            conn.execute(
                sa.update(mkt_imports)
                .where(mkt_imports.c.id == import_id)
                .values(progress_at=datetime.now(UTC), **_counts(tally))
            )

    def _finish(
        self, tenant_id: str, import_id: str, status: ImportStatus, tally: dict[str, int], actor: str
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": datetime.now(UTC), **_counts(tally)}
        if status is ImportStatus.COMPLETED:
            values["total"] = tally["rows"]  # the estimate counted blank lines; now it is exact
        with db.write(self.engine) as conn:
            conn.execute(sa.update(mkt_imports).where(mkt_imports.c.id == import_id).values(**values))
            audit.append(
                conn,
                action=AuditAction.MKT_CONTACTS_IMPORTED,
                actor=actor,
                tenant_id=tenant_id,
                target=import_id,
                details={"status": status, **_counts(tally)},
            )

    def _job(self, conn: Connection, tenant_id: str, import_id: str) -> Any:
        job = conn.execute(
            sa.select(mkt_imports).where(mkt_imports.c.id == import_id, mkt_imports.c.tenant_id == tenant_id)
        ).first()
        if job is None:
            raise NotFound(f"no import {import_id!r}")
        return job

    def get(self, tenant_id: str, import_id: str, *, limit: int = 100) -> dict[str, Any]:
        """The import's progress and counts, with its first ``limit`` errors."""
        with db.reader(self.engine) as conn:
            job = self._job(conn, tenant_id, import_id)
            stored = conn.execute(
                sa.select(sa.func.count()).where(mkt_import_errors.c.import_id == import_id)
            ).scalar_one()
            errors = self._errors(conn, import_id, 0, limit)
        moved = job.progress_at or job.created_at
        return {
            "id": job.id,
            "status": job.status,
            "stalled": job.status == ImportStatus.PROCESSING and datetime.now(UTC) - moved > STALLED_AFTER,
            "rows": job.rows,
            "total": job.total,
            "created": job.created,
            "updated": job.updated,
            "failed": job.failed,
            "error_count": stored,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "errors": errors,
        }

    def errors(self, tenant_id: str, import_id: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of the per-row error report, in row order (row, column, message)."""
        offset, limit = max(0, min(offset, MAX_STORED_ERRORS)), max(1, min(limit, 1000))
        with db.reader(self.engine) as conn:
            self._job(conn, tenant_id, import_id)
            total = conn.execute(
                sa.select(sa.func.count()).where(mkt_import_errors.c.import_id == import_id)
            ).scalar_one()
            data = self._errors(conn, import_id, offset, limit)
        return {"data": data, "total": total, "offset": offset, "limit": limit}

    def errors_csv(self, tenant_id: str, import_id: str) -> Iterator[str]:
        """The whole error report as CSV; 404 (NotFound) before the first line."""
        with db.reader(self.engine) as conn:
            self._job(conn, tenant_id, import_id)
        return self._error_lines(import_id)

    def _error_lines(self, import_id: str, page: int = 1000) -> Iterator[str]:
        yield csv_line(["row", "column", "message"])
        offset = 0
        while True:
            # Each page its own short read: a slow download holds no transaction open.
            with db.reader(self.engine) as conn:
                data = self._errors(conn, import_id, offset, page)
            for e in data:
                yield csv_line([str(e["row"]), e["field"], e["message"]])
            if len(data) < page:
                return
            offset += page

    @staticmethod
    def _errors(conn: Connection, import_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
        rows = conn.execute(
            sa.select(mkt_import_errors)
            .where(mkt_import_errors.c.import_id == import_id)
            .order_by(mkt_import_errors.c.row, mkt_import_errors.c.seq)
            .offset(offset)
            .limit(limit)
        ).all()
        return [{"row": e.row, "field": e.field, "message": e.message} for e in rows]


def _row_of(field: str) -> int:
    """The row a parser refusal names (``row 7``); the header is row 1, the file row 0."""
    head, _, number = field.partition(" ")
    row = whole_number(number) if head == "row" else None
    if row is not None:
        return row
    return 1 if field == "header" else 0


def text_lines(spool: BinaryIO) -> Iterator[str]:
    """A binary file's UTF-8 text (a BOM dropped) as lines, 64 KiB read at a time."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    spool.seek(0)
    pending = ""
    while block := spool.read(64 * 1024):
        pending += decoder.decode(block)
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line + "\n"
        if len(pending) > MAX_LINE:
            raise ValidationFailed(
                [{"field": "file", "message": f"has a line longer than {MAX_LINE} characters"}]
            )
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def data_lines(spool: BinaryIO) -> int:
    """The lines after the header: the progress bar's total (a quoted newline or a blank
    line counts too; the total is corrected when the import ends)."""
    spool.seek(0)
    count, last = 0, b"\n"
    while block := spool.read(1 << 20):
        count += block.count(b"\n")
        last = block[-1:]
    if last != b"\n":
        count += 1  # a last line without its newline
    return max(count - 1, 0)


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
