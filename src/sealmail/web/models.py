"""What every HTTP adapter shares in the OpenAPI document: the RFC 9457 problem body,
the base of response bodies, and binary downloads."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict

# Instants a client may give: from the Unix epoch to the end of year 9998, so that a day or
# a year added later (an expiry, a retention period) still fits in a ``datetime``.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)


def _instant(value: datetime) -> datetime:
    """``value`` in UTC; refused unless it names one instant in the range above."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a timezone offset, e.g. 2026-01-01T09:00:00Z")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError("must lie between 1970-01-01T00:00:00Z and 9998-12-31T23:59:59Z")
    return utc


# Every datetime an API client gives, in a body or a query.  A naive one reached the UTC
# columns' own check and one at the edge of the range overflowed converting to UTC: both
# were a 500 (``GET /v1/messages?since=2026-01-01``, ``send_at`` at year 1 with an offset).
Instant = Annotated[datetime, AfterValidator(_instant)]


def as_json(value: Any) -> Any:
    """A service's typed result as JSON values: a dataclass's fields in order, datetimes as
    ISO 8601 strings, tuples as lists (nested results likewise)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


class Out(BaseModel):
    """Base of response bodies: ``extra="allow"``, so a field a service adds later still
    reaches the client (and the document keeps ``additionalProperties``), while every field
    listed is promised."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def of(cls, result: Any, **extra: Any) -> Self:
        """The body for a service's typed result (a dataclass of the same field names)."""
        return cls.model_validate({**as_json(result), **extra})


class Problem(BaseModel):
    """RFC 9457 problem details (extension members, §3.2, pass through)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None


def binary(description: str) -> dict[str, Any]:
    """One entry of ``responses=`` for a body of bytes, not JSON (a download)."""
    return {
        "description": description,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
