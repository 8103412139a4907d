"""Tables of the files feature, on the shared metadata (see ``store/all_tables.py``).

A shared file's bytes never enter the database: they live as encrypted chunks in the
blob store (``sealmail.files.blobstore``).  A row holds what is needed to find, check and
decrypt them: the wrapped per-file key, the chunk geometry and the plaintext's SHA-256.
The filename is PHI-bearing (``HIV-results-J-Doe.pdf``), so it is stored sealed under the
file's own key; size, content type and timestamps are plaintext metadata for search and
quota, documented as such.  Destroying ``wrapped_data_key`` and ``file_key_enc``
crypto-shreds the file even if a blob copy survives somewhere.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

file_shares = sa.Table(
    "file_shares",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    # The portal message that delivers the file; NULL until the sender sends it.
    sa.Column("message_id", ID, nullable=True),
    sa.Column("filename_enc", sa.LargeBinary, nullable=True),  # AES-GCM under the file key
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("sha256", sa.String(64), nullable=True),  # hex, of the plaintext; set at finalize
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False, default=0),
    # Keyring envelope: the tenant key wraps a data key, which seals the per-file key.
    sa.Column("tenant_key_id", sa.String(40), nullable=True),
    sa.Column("wrapped_data_key", sa.LargeBinary, nullable=True),
    sa.Column("file_key_enc", sa.LargeBinary, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # uploading | ready | deleted
    sa.Column("created_by", sa.String(80), nullable=False),  # API credential id
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finalized_at", UtcDateTime, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    sa.Index("ix_file_shares_tenant_message", "tenant_id", "message_id"),
    sa.Index("ix_file_shares_tenant_status", "tenant_id", "status"),
)

__all__ = ["file_shares", "metadata"]
