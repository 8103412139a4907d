"""Tables of the suppressions feature, on the shared metadata (see ``store/all_tables.py``).

One row per (tenant, stream, address): an address Sealmail must not send to on that
stream, or on every stream when ``stream`` is ``"*"``.  Addresses are stored lower-cased
(see ``services/suppressions.py`` for why), in plaintext like every address column: the
intake check must find them with an index, and they are routing metadata, not content.
A row whose ``expires_at`` has passed no longer suppresses; writing it again re-activates it.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("stream", sa.String(20), nullable=False),  # transactional | phi | broadcast | *
    sa.Column("address", sa.String(320), nullable=False),  # lower-cased addr-spec
    # hard_bounce | soft_bounce | complaint | unsubscribe | manual
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("source", sa.String(20), nullable=False),  # api | cli | smtp | dsn | fbl | …
    sa.Column("message_id", ID, nullable=True),  # the message whose outcome caused it, if any
    sa.Column("created_by", sa.String(80), nullable=False),  # credential id, "cli" or "system"
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),  # NULL = until removed
    # Address first: the intake check asks for (tenant, addresses) across two streams.
    sa.UniqueConstraint("tenant_id", "address", "stream", name="uq_suppressions_tenant_address_stream"),
    # The listing pages through a tenant's entries by id.
    sa.Index("ix_suppressions_tenant_page", "tenant_id", "id"),
)

__all__ = ["metadata", "suppressions"]
