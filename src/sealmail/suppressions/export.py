"""The CSV export of a tenant's suppression list (RFC 4180 lines, safe to open in a spreadsheet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

# RFC 4180 columns of the export.
CSV_COLUMNS = ("address", "stream", "reason", "source", "created_at", "expires_at", "message_id")
# OWASP "CSV injection": a cell starting with one of these is a formula to spreadsheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def unprotected(value: str) -> str:
    """A cell as it was before ``csv_line`` protected it (its apostrophe removed), so an
    export reads back as what was exported."""
    return value[1:] if value[:1] == "'" and value[1:].startswith(FORMULA_START) else value


def csv_line(values: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([_csv_cell(v) for v in values])
    return buf.getvalue()
