"""Audit names of the webhooks feature (``object:verb``, like ``audit.AuditAction``).

Kept here until they join ``AuditAction``; callers pass them with a type-ignore that says so.
"""

from __future__ import annotations

import enum


class WebhookAudit(enum.StrEnum):
    ENDPOINT_CREATED = "webhook_endpoint:created"
    ENDPOINT_UPDATED = "webhook_endpoint:updated"
    ENDPOINT_DELETED = "webhook_endpoint:deleted"
    ENDPOINT_SECRET_ROTATED = "webhook_endpoint:secret_rotated"  # noqa: S105  # a name, not a secret
    ENDPOINT_DISABLED = "webhook_endpoint:disabled"  # by the dispatcher (410, sustained failure)
    ENDPOINT_TESTED = "webhook_endpoint:tested"
    DELIVERY_REPLAYED = "webhook_delivery:replayed"
    ENDPOINT_REPLAYED = "webhook_endpoint:replayed"  # everything since a time
