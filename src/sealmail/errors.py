"""The catalogue of Sealmail errors.

Every error a client can see is a subclass of ``SealmailError`` carrying a stable problem
``type`` (RFC 9457), an HTTP status and a title.  The API renders them by walking the MRO;
the SMTP gateway and the CLI map them to reply codes and exit codes.  Messages say what to
do next.

    SealmailError
    ├── InvalidRequest (400)
    │   ├── ValidationFailed (422)          field-level problems; carries ``errors``
    │   ├── PolicyRejected (422)            refused by the tenant's DLP rules; carries ``findings``
    │   └── MessageRefused (422)            breaks an intake limit; carries ``rule``
    ├── AuthenticationRequired (401)
    ├── PermissionDenied (403)              the key lacks a scope
    ├── NotFound (404)                      also for other tenants' objects: never 403
    ├── Conflict (409)
    │   └── IdempotencyConflict (409)
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── RateLimited (429)
    └── ServiceUnavailable (503)
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://sealmail.dev/problems/"


class SealmailError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class InvalidRequest(SealmailError):
    status = 400
    slug = "invalid-request"
    title = "The request is malformed"


class ValidationFailed(InvalidRequest):
    """Field-level problems; ``errors`` is a list of ``{"field": ..., "message": ...}``."""

    status = 422
    slug = "validation-failed"
    title = "The request has invalid fields"

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None) -> None:
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        super().__init__(detail or f"{first['field']}: {first['message']}", errors=errors)


class PolicyRejected(InvalidRequest):
    """Refused by policy (DLP ``block``); ``findings`` name detectors and places, never values."""

    status = 422
    slug = "policy-rejected"
    title = "Refused by the organisation's data-loss-prevention rules"


class MessageRefused(InvalidRequest):
    """The raw message breaks an intake limit (``domain/intake_limits.py``); ``rule`` names it.

    Permanent: the same bytes fail the same way on every retry.
    """

    status = 422
    slug = "message-refused"
    title = "The message breaks an intake limit"

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail, rule=rule)
        self.rule = rule


class AuthenticationRequired(SealmailError):
    status = 401
    slug = "authentication-required"
    title = "Authentication required"


class PermissionDenied(SealmailError):
    status = 403
    slug = "permission-denied"
    title = "The credential lacks the scope for this action"


class NotFound(SealmailError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(SealmailError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class IdempotencyConflict(Conflict):
    slug = "idempotency-conflict"
    title = "Idempotency-Key reused with a different request"


class PayloadTooLarge(SealmailError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(SealmailError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class RateLimited(SealmailError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        # Retry-After and RateLimit fields: the client needs them to know when to come back.
        self.headers = headers or {}


class ServiceUnavailable(SealmailError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"
