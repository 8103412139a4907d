"""Errors of the files feature, in the catalogue's shape (``sealmail.errors``).

They subclass the catalogue's classes, so the API's one RFC 9457 handler renders them by
MRO without knowing this module.
"""

from __future__ import annotations

from sealmail.errors import SealmailError


class FileUnreadable(SealmailError):
    """Stored ciphertext failed authentication or is missing: the system cannot go on.

    Raised instead of ever serving bytes that were not proven to be the sender's; the
    detail names the file id only.
    """

    status = 500
    slug = "file-unreadable"
    title = "The stored file failed its integrity check"
