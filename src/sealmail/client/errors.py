"""What the client raises: the server's RFC 9457 problem, or a transport failure.

``SealmailApiError`` carries the problem document's fields, so callers branch on the
stable ``type`` URI (or ``status``), never on the wording of ``title`` or ``detail``.
"""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_BASE = "https://sealmail.dev/problems/"


class SealmailClientError(Exception):
    """Base of everything the client raises."""


class SealmailTransportError(SealmailClientError):
    """The server could not be reached or the connection failed (after any retries)."""


class SealmailApiError(SealmailClientError):
    """The server answered with an error status; the fields come from its problem+json body."""

    def __init__(
        self,
        status: int,
        type: str,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        *,
        instance: str | None = None,
        extra: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.instance = instance
        self.extra = extra or {}
        self.retry_after = retry_after

    @property
    def slug(self) -> str:
        """The last part of a Sealmail problem type, e.g. ``"idempotency-conflict"``."""
        return self.type.removeprefix(PROBLEM_BASE)

    @property
    def fields(self) -> list[str]:
        """The names of the invalid fields of a 422, e.g. ``["to[0]", "from"]``."""
        return [e.get("field", "") for e in self.errors]

    def __repr__(self) -> str:
        return f"SealmailApiError(status={self.status}, type={self.type!r}, detail={self.detail!r})"


def from_response(response: httpx.Response, retry_after: float | None = None) -> SealmailApiError:
    """Build the error for a 4xx/5xx answer, tolerating bodies that are not problem+json
    (a proxy's HTML page, an empty 502)."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    known = {"type", "title", "status", "detail", "instance", "errors"}
    raw_errors = body.get("errors")
    errors = (
        [{str(k): str(v) for k, v in e.items()} for e in raw_errors if isinstance(e, dict)]
        if isinstance(raw_errors, list)
        else None
    )
    return SealmailApiError(
        status=response.status_code,
        type=str(body.get("type") or "about:blank"),
        title=str(body.get("title") or response.reason_phrase or "HTTP error"),
        detail=str(body.get("detail") or ""),
        errors=errors,
        instance=str(body["instance"]) if body.get("instance") else None,
        extra={k: v for k, v in body.items() if k not in known},
        retry_after=retry_after,
    )
