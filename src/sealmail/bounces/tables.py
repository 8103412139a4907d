"""Tables of the bounces feature, on the shared metadata (see ``store/all_tables.py``).

``feedback_reports`` keeps the evidence of every inbound DSN or ARF report that was matched
to a recipient: what the remote system said (action, status, diagnostic, which MTA) and
when, never the returned message.  ``fingerprint`` (SHA-256 of recipient, kind, action and
status) is unique per recipient, so the same report arriving twice — remote MTAs retry,
feedback loops resend — is recorded, and acted on, once.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

feedback_reports = sa.Table(
    "feedback_reports",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("message_id", ID, nullable=False),
    sa.Column("recipient_id", ID, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # dsn | arf
    # DSN: failed | delayed | delivered | relayed | expanded; ARF: the feedback type.
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("status", sa.String(12), nullable=True),  # RFC 3463 code of a DSN
    sa.Column("classification", sa.String(40), nullable=True),  # domain/retry.py BounceClass
    sa.Column("diagnostic", sa.String(500), nullable=True),  # Diagnostic-Code, trimmed
    sa.Column("remote_mta", sa.String(255), nullable=True),
    sa.Column("reporting_mta", sa.String(255), nullable=True),
    sa.Column("heuristic", sa.Boolean, nullable=False, server_default=sa.false()),
    # What it changed: bounced | deferred | complained | none.
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("recipient_id", "fingerprint", name="uq_feedback_reports_recipient_fingerprint"),
    sa.Index("ix_feedback_reports_tenant_message", "tenant_id", "message_id"),
)

__all__ = ["feedback_reports", "metadata"]
