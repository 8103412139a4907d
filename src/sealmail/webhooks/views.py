"""What the webhook service hands back: an endpoint, a delivery and its attempt log.

Typed results; the API (``schemas.py``) and the CLI shape them for their clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sealmail.webhooks.states import DeliveryStatus, EndpointStatus


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    streams: tuple[str, ...]
    payload: str  # thin | full
    status: EndpointStatus
    disabled_reason: str | None
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Endpoint:
        stored = {f.name: getattr(row, f.name) for f in fields(cls)}
        return cls(
            **{
                **stored,
                "event_types": tuple(row.event_types),
                "streams": tuple(row.streams),
                "status": EndpointStatus(row.status),
            }
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery, as its log shows it."""

    at: datetime | None
    status_code: int | None
    duration_ms: int
    outcome: str  # delivered | retry | failed | gone
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    webhook_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None  # only while pending
    last_status_code: int | None
    last_error: str | None
    created_at: datetime | None
    log: tuple[Attempt, ...] = ()

    @classmethod
    def from_row(cls, row: Any, attempts: Sequence[Any] = ()) -> Delivery:
        stored = {f.name: getattr(row, f.name) for f in fields(cls) if f.name != "log"}
        stored["status"] = DeliveryStatus(row.status)
        if row.status != DeliveryStatus.PENDING:
            stored["next_attempt_at"] = None
        log = tuple(Attempt(a.at, a.status_code, a.duration_ms, a.outcome, a.error) for a in attempts)
        return cls(**stored, log=log)
