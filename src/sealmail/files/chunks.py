"""Chunked authenticated encryption of one file.

A file is cut into fixed-size plaintext chunks; each is sealed with AES-256-GCM under the
file's own key with a fresh random 96-bit nonce (stored in front of the ciphertext; at
most 2 048 chunks of 1 MiB per key for a 2 GiB file keeps the collision probability far
below NIST SP 800-38D §8.3's 2^-32 bound).  The associated data binds each chunk to its
tenant, file, position and whether it is the last one, so that (the "STREAM" construction
of Hoang, Reyhanitabar, Rogaway and Vizár, 2015):

* reordering chunks fails (the index differs),
* truncating the file fails (the new last chunk was not sealed as final),
* appending or splicing chunks of another file fails (the file id differs),
* moving a file to another tenant fails (the tenant id differs).

The chunk count and size also live in the database row, so a missing tail is detected
before any byte is served.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealmail.crypto import vault

NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES
DEFAULT_CHUNK_SIZE = 1024 * 1024


class ChunkIntegrityError(Exception):
    """A chunk is missing, altered, misplaced or from another file: never serve its bytes."""


def chunk_aad(tenant_id: str, file_id: str, index: int, final: bool) -> bytes:
    return f"sealmail:file-chunk:{tenant_id}:{file_id}:{index}:{int(final)}".encode()


def name_aad(tenant_id: str, file_id: str) -> bytes:
    return f"sealmail:file-name:{tenant_id}:{file_id}".encode()


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a file's bytes sit: fixed-size chunks, the last one possibly short."""

    size: int
    chunk_size: int

    @property
    def chunks(self) -> int:
        # An empty file is still one (empty, final) chunk, so "final" is always proven.
        return max(1, -(-self.size // self.chunk_size))

    def span(self, start: int, end: int) -> range:
        """The chunk indexes holding plaintext bytes ``start..end`` (inclusive)."""
        return range(start // self.chunk_size, end // self.chunk_size + 1)


def seal_chunk(key: bytes, tenant_id: str, file_id: str, index: int, final: bool, data: bytes) -> bytes:
    return vault.seal(key, data, chunk_aad(tenant_id, file_id, index, final))


def open_chunk(key: bytes, tenant_id: str, file_id: str, index: int, final: bool, blob: bytes) -> bytes:
    try:
        return vault.open_sealed(key, blob, chunk_aad(tenant_id, file_id, index, final))
    except vault.KeyError_ as exc:
        raise ChunkIntegrityError(f"chunk {index} of {file_id} does not authenticate") from exc
