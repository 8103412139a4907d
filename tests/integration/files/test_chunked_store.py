"""The pieces under the HTTP routes: blob stores, chunk sealing, ranges, the upload buffer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.conftest import TenantFixture

from sealmail.app import Services, build_file_shares
from sealmail.crypto import vault
from sealmail.files import chunks
from sealmail.files.blobstore import BlobMissing, BlobStore, LocalDirectoryBlobStore, MemoryBlobStore
from sealmail.files.errors import FileUnreadable
from sealmail.files.ranges import ByteRange, Unsatisfiable, parse_range
from sealmail.files.reading import chunk_key


@pytest.fixture(params=["memory", "directory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return MemoryBlobStore() if request.param == "memory" else LocalDirectoryBlobStore(tmp_path / "blobs")


def test_blob_stores_agree_on_put_get_and_prefix_delete(store: BlobStore) -> None:
    store.put("files/t1/f1/000000", b"a")
    store.put("files/t1/f1/000001", b"b")
    store.put("files/t1/f10/000000", b"c")
    store.put("files/t1/f1/000000", b"A")  # replace
    assert store.get("files/t1/f1/000000") == b"A"
    assert store.delete_prefix("files/t1/f1") == 2
    with pytest.raises(BlobMissing):
        store.get("files/t1/f1/000001")
    assert store.get("files/t1/f10/000000") == b"c"  # a sibling sharing the prefix's text stays
    assert store.delete_prefix("files/none") == 0
    for bad in ("../x", "/abs", "a/../../b", "a//b"):
        with pytest.raises(ValueError, match="invalid blob key"):
            store.put(bad, b"")


def test_chunks_are_bound_to_tenant_file_position_and_finality() -> None:
    key = vault.new_key()
    blob = chunks.seal_chunk(key, "t1", "f1", 3, False, b"data")
    assert chunks.open_chunk(key, "t1", "f1", 3, False, blob) == b"data"
    for tenant, file_id, index, final in (
        ("t2", "f1", 3, False),
        ("t1", "f2", 3, False),
        ("t1", "f1", 4, False),
    ):
        with pytest.raises(chunks.ChunkIntegrityError):
            chunks.open_chunk(key, tenant, file_id, index, final, blob)
    with pytest.raises(chunks.ChunkIntegrityError):  # a truncated file's new last chunk
        chunks.open_chunk(key, "t1", "f1", 3, True, blob)


@pytest.mark.parametrize(
    ("header", "size", "want"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=2-", 10, ByteRange(2, 9)),
        ("bytes=-3", 10, ByteRange(7, 9)),
        ("bytes=-30", 10, ByteRange(0, 9)),
        ("bytes=5-99", 10, ByteRange(5, 9)),
        ("bytes=0-1,4-5", 10, None),  # multi-range: served whole
        ("items=0-1", 10, None),  # another unit: ignored
    ],
)
def test_ranges_follow_rfc_9110(header: str | None, size: int, want: ByteRange | None) -> None:
    assert parse_range(header, size) == want


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=5-4", "bytes=-0", "bytes=x-1", "bytes=", "bytes=1"])
def test_unsatisfiable_ranges_are_refused(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 10)


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 4096, 4097])
def test_upload_cuts_exact_chunks_and_reads_back_any_range(
    services: Services, tenant: TenantFixture, size: int
) -> None:
    blobs = MemoryBlobStore()
    shares = build_file_shares(services, blobs)
    shares.chunk_size = 1024
    data = bytes(i % 251 for i in range(size))
    up = shares.start(tenant.principal, "x.bin", "application/octet-stream")
    for i in range(0, size, 700):  # reads that do not line up with chunks
        up.feed(data[i : i + 700])
    meta = up.finish()
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.chunks == max(1, -(-size // 1024)) == len(blobs.keys())
    opened = shares.open(tenant.id, up.file_id)
    assert b"".join(opened.iter_range(None)) == data
    if size:
        for start in range(0, size, 333):
            end = min(size - 1, start + 1500)
            assert b"".join(opened.iter_range(ByteRange(start, end))) == data[start : end + 1]


def test_a_missing_final_chunk_is_an_error_not_a_short_file(
    services: Services, tenant: TenantFixture
) -> None:
    blobs = MemoryBlobStore()
    shares = build_file_shares(services, blobs)
    shares.chunk_size = 1024
    up = shares.start(tenant.principal, "x.bin", "application/octet-stream")
    up.feed(b"z" * 3000)
    up.finish()
    blobs.delete_prefix(f"files/{tenant.id}/{up.file_id}")
    blobs.put(chunk_key(tenant.id, up.file_id, 0), b"\0" * 40)
    with pytest.raises(FileUnreadable):
        list(shares.open(tenant.id, up.file_id).iter_range(None))
