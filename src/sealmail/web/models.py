"""What every HTTP adapter shares in the OpenAPI document: the RFC 9457 problem body,
the base of response bodies, and binary downloads."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


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
