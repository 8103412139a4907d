"""Tables of the templates feature, on the shared metadata (see ``store/all_tables.py``)."""

from __future__ import annotations

from sealmail.store.tables import metadata

__all__ = ["metadata"]
