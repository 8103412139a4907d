"""One page of a keyset-paginated listing: the items, and the cursor for the next page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    # The last id of this page when more follow (the next request's ``cursor``), else None.
    next_cursor: str | None
