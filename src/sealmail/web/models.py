"""What every HTTP adapter shares in the OpenAPI document: the RFC 9457 problem body,
the base of response bodies, and binary downloads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    """Base of response bodies: ``extra="allow"``, so a field a service adds later still
    reaches the client (and the document keeps ``additionalProperties``), while every field
    listed is promised."""

    model_config = ConfigDict(extra="allow")


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
