"""What the tenancy services hand back (typed results the adapters shape)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    settings: dict[str, Any]  # the tenant's settings JSON (open by design: one key per feature)
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Tenant:
        return cls(row["id"], row["name"], dict(row["settings"] or {}), row["created_at"])


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as listed: never its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class SmtpCredentialInfo:
    """An SMTP credential as listed: never its password."""

    id: str
    username: str
    stream: str
    created_at: datetime | None
    revoked_at: datetime | None
