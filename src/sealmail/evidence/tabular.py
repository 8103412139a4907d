"""Every evidence report is a table: one header, rows of short strings, as CSV or PDF.

CSV is RFC 4180 (CRLF line breaks), every cell safe to open in a spreadsheet
(:mod:`sealmail.domain.spreadsheet`): reports carry addresses and reasons that came from outside.
"""

from __future__ import annotations

from collections.abc import Sequence

from sealmail.domain.spreadsheet import csv_table
from sealmail.evidence.pdf import text_pdf

# A PDF line is cut here; the CSV keeps the whole cell.
PDF_CELL = 60


def table_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return csv_table(header, rows)


def table_pdf(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """The same table in aligned columns on PDF pages (long cells cut with an ellipsis)."""
    cut = [[c if len(c) <= PDF_CELL else c[: PDF_CELL - 3] + "..." for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cut) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cut]
    return text_pdf(title, lines)
