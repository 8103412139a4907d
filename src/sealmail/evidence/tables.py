"""Tables of the evidence feature: signed anchors of the audit chain."""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

# One row per anchor: the chain head (sequence number and hash) at a moment, signed by
# the installation's evidence key.  A history rewritten before an anchor no longer
# yields the anchored hash at that sequence number (``evidence/anchors.py``).
audit_anchors = sa.Table(
    "audit_anchors",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False, index=True),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("key_fingerprint", sa.String(64), nullable=False),
    # The whole signed document (``evidence/signed.py``), as handed to the officer.
    sa.Column("document", sa.JSON, nullable=False),
)
