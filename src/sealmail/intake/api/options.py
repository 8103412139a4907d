"""What the API app is told by the composition root: limits and names, never ``Settings``.

Kept apart from the app module (no FastAPI import) so the root can build these cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealmail.domain.intake_limits import IntakeLimits


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """Per-key request limits and the failed-authentication throttle."""

    per_minute: int
    max_per_minute: int  # the ceiling a tenant's own ``rate_limit`` may ask for
    auth_failure_limit: int
    auth_failure_window_seconds: int


@dataclass(frozen=True, slots=True)
class ApiOptions:
    limits: ApiLimits
    max_request_bytes: int
    max_file_bytes: int
    message_id_domain: str
    max_recipients: int
    intake_limits: IntakeLimits
    # The portal, tracking and unsubscribe pages served by the API process too (one origin).
    portal_on_api: bool
