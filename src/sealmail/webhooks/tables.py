"""Tables of the webhooks feature, on the shared metadata (see ``store/all_tables.py``).

The ``events`` table is the outbox: every state change writes its event in the same
transaction as the change.  The dispatcher fans events out into ``webhook_deliveries``
(one row per endpoint and event, unique, so fan-out can run twice without sending
twice), sends due deliveries under a lease and logs every try in ``webhook_attempts``.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

# A tenant's receiver.  Signing secrets are sealed under the tenant key (``Keyring.seal``,
# owner id = the secret's own id, so a sealed secret keeps authenticating when rotation
# moves it from the "current" to the "previous" columns).
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("description", sa.String(200), nullable=False, server_default=""),
    sa.Column("event_types", sa.JSON, nullable=False),  # [] = every type; "message.*" = prefix
    sa.Column("streams", sa.JSON, nullable=False),  # [] = every stream
    sa.Column("payload", sa.String(8), nullable=False),  # thin | full
    sa.Column("status", sa.String(10), nullable=False),  # states.EndpointStatus
    sa.Column("disabled_reason", sa.String(200), nullable=True),
    sa.Column("secret_id", ID, nullable=False),
    sa.Column("secret_key_id", ID, nullable=False),  # tenant key that wraps the data key
    sa.Column("secret_wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("secret", sa.LargeBinary, nullable=False),
    sa.Column("previous_secret_id", ID, nullable=True),
    sa.Column("previous_secret_key_id", ID, nullable=True),
    sa.Column("previous_secret_wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("previous_secret", sa.LargeBinary, nullable=True),
    sa.Column("previous_secret_expires_at", UtcDateTime, nullable=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failing_since", UtcDateTime, nullable=True),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.id"), nullable=False),
    sa.Column("event_id", ID, nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    # The Standard Webhooks ``webhook-id``: the event id, the same on every retry and
    # replay, so receivers can deduplicate.
    sa.Column("webhook_id", ID, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # states.DeliveryStatus
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(80), nullable=True),
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_tenant_endpoint", "tenant_id", "endpoint_id", "id"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("delivery_id", ID, nullable=False, index=True),
    sa.Column("endpoint_id", ID, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(10), nullable=False),  # delivered | retry | failed | gone
    sa.Column("error", sa.String(300), nullable=True),
)

# How far fan-out has read the events table for one endpoint.  Ids from concurrent
# transactions can commit out of order, so each scan starts a lookback window before
# ``last_event_id``; the unique delivery constraint makes the overlap harmless.
webhook_cursors = sa.Table(
    "webhook_cursors",
    metadata,
    sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.id"), primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("last_event_id", ID, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
