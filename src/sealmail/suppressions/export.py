"""The CSV export of a tenant's suppression list (RFC 4180 lines, safe to open in a spreadsheet)."""

from __future__ import annotations

from sealmail.domain.spreadsheet import FORMULA_START, csv_line, unprotected

# RFC 4180 columns of the export.
CSV_COLUMNS = ("address", "stream", "reason", "source", "created_at", "expires_at", "message_id")
__all__ = ["CSV_COLUMNS", "FORMULA_START", "csv_line", "unprotected"]
