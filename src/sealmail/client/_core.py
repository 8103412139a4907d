"""The parts both clients share: the description of one call, and the retry rules."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from sealmail.client.errors import SealmailApiError, SealmailTransportError, from_response

USER_AGENT = "sealmail-client/0.1"
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request, independent of the sync or async client that sends it."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries of 429 and 503: both mean the server did nothing with the request.

    ``Retry-After`` is honoured up to ``max_wait`` seconds; a longer demand is not waited
    for, the error goes to the caller with ``retry_after`` set.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def delay(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        asked = retry_after(response)
        if asked is not None:
            return asked if asked <= self.max_wait else None
        # Full jitter (AWS architecture blog): spreads clients that failed together.
        return random.uniform(0, min(self.max_wait, self.backoff * 2**attempt))  # noqa: S311 -- jitter, not crypto


def retry_after(response: httpx.Response) -> float | None:
    """RFC 9110 §10.2.3: ``Retry-After`` is delay-seconds or an HTTP-date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def segment(value: str) -> str:
    """One path segment, escaped: an id can never add a path component."""
    return quote(value, safe="")


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise from_response(response, retry_after(response))


def transport_error(exc: httpx.TransportError, call: Call) -> SealmailTransportError:
    # The message names the operation only: URLs may carry ids and filters, never keys.
    return SealmailTransportError(f"{call.method} {call.path} failed: {type(exc).__name__}")


def client_headers(api_key: str) -> dict[str, str]:
    if not api_key:
        raise ValueError("an API key is required (it starts with `sm_`)")
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"}


__all__ = [
    "Call",
    "RetryPolicy",
    "SealmailApiError",
    "client_headers",
    "raise_for_problem",
    "retry_after",
    "segment",
    "transport_error",
]
