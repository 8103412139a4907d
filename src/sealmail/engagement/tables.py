"""Tables of the engagement feature, on the shared metadata (see ``store/all_tables.py``).

``tracked_links``: the original URLs behind one message's click-tracking links, one row
per message.  URLs can carry PHI in their query strings (``?patient=…``), so the list is
sealed like message content: a data key of its own, wrapped by the tenant key
(``services.keyring.seal``).  A click token names the recipient and the link's index; the
redirect opens this row and follows the URL at that index.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

tracked_links = sa.Table(
    "tracked_links",
    metadata,
    sa.Column("message_id", ID, sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("link_count", sa.Integer, nullable=False),  # how many links (not secret)
    sa.Column("tenant_key_id", ID, nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("urls", sa.LargeBinary, nullable=False),  # sealed JSON list of URLs
    sa.Column("created_at", UtcDateTime, nullable=False),
)

__all__ = ["metadata", "tracked_links"]
