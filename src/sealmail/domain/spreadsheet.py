"""Cells and lines of every CSV the product writes, safe to open in a spreadsheet.

OWASP "CSV injection": a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage
return is run as a formula by Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``,
``=cmd|' /C calc'!A0``).  Exports carry text from outside (addresses, names, reasons, form
answers), so every cell is written through :func:`safe_cell`, which puts an apostrophe (the
spreadsheets' own "this is text" mark) in front.  A cell that already starts with an apostrophe
followed by a formula character gets one more, so :func:`unprotected` gives back exactly what
was exported.  No CSV is written any other way (tests/unit/domain/test_spreadsheet.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _needs_mark(value: str) -> bool:
    return value.startswith(FORMULA_START) or (value[:1] == "'" and _needs_mark(value[1:]))


def safe_cell(value: str) -> str:
    """``value`` as a cell no spreadsheet runs as a formula."""
    return "'" + value if _needs_mark(value) else value


def unprotected(value: str) -> str:
    """A cell as it was before :func:`safe_cell` (an export read back as what was exported)."""
    return value[1:] if value[:1] == "'" and _needs_mark(value[1:]) else value


def csv_line(values: Sequence[str]) -> str:
    """One RFC 4180 line (CRLF) of safe cells."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([safe_cell(v) for v in values])
    return buf.getvalue()


def csv_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A header line and rows of safe cells (the header too: it may name tenant attributes)."""
    return csv_line(header) + "".join(csv_line(row) for row in rows)
