"""Reading a stored file back: unwrap its key, decrypt only the chunks a range needs.

``OpenedFile.iter_range`` is a generator: a 1 GiB download holds one decrypted chunk at a
time, whichever of the API or the portal serves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sealmail.files import chunks
from sealmail.files.blobstore import BlobMissing, BlobStore
from sealmail.files.errors import FileUnreadable
from sealmail.files.ranges import ByteRange


def chunk_key(tenant_id: str, file_id: str, index: int) -> str:
    return f"{file_prefix(tenant_id, file_id)}/{index:06d}"


def file_prefix(tenant_id: str, file_id: str) -> str:
    return f"files/{tenant_id}/{file_id}"


@dataclass(frozen=True, slots=True)
class OpenedFile:
    """A ready file with its key unwrapped, for one download."""

    id: str
    tenant_id: str
    message_id: str | None
    filename: str
    content_type: str
    sha256: str
    layout: chunks.Layout
    key: bytes
    blobs: BlobStore

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def etag(self) -> str:
        # The plaintext digest is a strong validator: the bytes never change once ready.
        return f'"{self.sha256}"'

    def read_chunk(self, index: int) -> bytes:
        final = index == self.layout.chunks - 1
        try:
            blob = self.blobs.get(chunk_key(self.tenant_id, self.id, index))
            data = chunks.open_chunk(self.key, self.tenant_id, self.id, index, final, blob)
        except (BlobMissing, chunks.ChunkIntegrityError) as exc:
            raise FileUnreadable(
                f"file {self.id} failed its integrity check at chunk {index}; "
                "nothing more is served — ask the sender to share it again"
            ) from exc
        expected = min(self.layout.chunk_size, self.layout.size - index * self.layout.chunk_size)
        if len(data) != expected:
            # Authenticated but of the wrong length can only mean a bug or a mismatched
            # row; refuse rather than shift every later byte.
            raise FileUnreadable(f"file {self.id} chunk {index} has an unexpected length")
        return data

    def iter_range(self, rng: ByteRange | None) -> Iterator[bytes]:
        """Plaintext of ``rng`` (or the whole file), one chunk's worth at a time."""
        if self.size == 0:
            self.read_chunk(0)  # still proves the (empty, final) chunk is ours
            return
        whole = rng or ByteRange(0, self.size - 1)
        size = self.layout.chunk_size
        for index in self.layout.span(whole.start, whole.end):
            data = self.read_chunk(index)
            base = index * size
            lo = max(whole.start - base, 0)
            hi = min(whole.end - base + 1, len(data))
            yield data[lo:hi] if (lo, hi) != (0, len(data)) else data
