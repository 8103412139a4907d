"""The blob-store port: where encrypted chunks live, outside the database.

The interface is deliberately small (put, get, delete a prefix) so that an S3-compatible
object store (MinIO, Ceph, AWS S3) implements it with one call each.  Everything stored
here is already ciphertext: a blob store needs no trust beyond availability, and a copy
of it opens nothing without the wrapped keys in the database.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from typing import Protocol

# Keys are built by FileShares from ids only; anything else is a programming error, and
# refusing ``..`` and leading slashes keeps a key from escaping the store's root.
_KEY = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-.]+)*$")


class BlobMissing(Exception):
    """The blob does not exist (deleted, never written, or the store lost it)."""


def _check(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    """Opaque, immutable blobs addressed by ``/``-separated keys."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, durably, replacing any previous blob."""
        ...

    def get(self, key: str) -> bytes:
        """The blob's bytes; raises ``BlobMissing`` when there is none."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob under ``prefix/``; returns how many were deleted."""
        ...


class LocalDirectoryBlobStore:
    """Blobs as files under one directory (the embedded default: ``<home>/blobs``).

    Each put writes a temporary file, fsyncs it and renames it into place, so a crash
    leaves either the old blob or the new one, never a torn chunk.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, key: str) -> Path:
        return self.root / _check(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissing(key) from exc

    def delete_prefix(self, prefix: str) -> int:
        folder = self._path(prefix)
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
        return count


class MemoryBlobStore:
    """An in-memory store for tests and the conformance suite."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._blobs[_check(key)] = bytes(data)

    def get(self, key: str) -> bytes:
        try:
            return self._blobs[_check(key)]
        except KeyError as exc:
            raise BlobMissing(key) from exc

    def delete_prefix(self, prefix: str) -> int:
        start = _check(prefix) + "/"
        with self._lock:
            doomed = [k for k in self._blobs if k.startswith(start)]
            for k in doomed:
                del self._blobs[k]
        return len(doomed)

    def keys(self) -> list[str]:
        return sorted(self._blobs)
