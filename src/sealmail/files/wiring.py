"""Building FileShares from the composition root's services and settings.

Settings the files feature reads, each with a default until ``config.py`` declares it:
``blob_dir`` (default ``<home>/blobs``), ``max_file_bytes`` (2 GiB), ``file_chunk_bytes``
(1 MiB) and ``portal_expiry_days`` (how long a shared file stays downloadable).
"""

from __future__ import annotations

from sealmail.app import Services
from sealmail.files import chunks
from sealmail.files.blobstore import BlobStore, blob_store_from_settings
from sealmail.files.service import FileShares

DEFAULT_MAX_FILE_BYTES = 2 * 1024**3


def max_file_bytes(settings: object) -> int:
    return int(getattr(settings, "max_file_bytes", DEFAULT_MAX_FILE_BYTES))


def file_shares_for(services: Services, blobs: BlobStore | None = None) -> FileShares:
    s = services.settings
    return FileShares(
        services.engine,
        services.keyring,
        blobs or blob_store_from_settings(s),
        services.messages,
        portal_url=s.resolved_portal_url,
        message_id_domain=s.smtp_hostname,
        chunk_size=int(getattr(s, "file_chunk_bytes", chunks.DEFAULT_CHUNK_SIZE)),
        expiry_days=int(getattr(s, "portal_expiry_days", 30)),
    )
