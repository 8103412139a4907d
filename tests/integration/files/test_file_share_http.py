"""Large-file secure send over real HTTP: upload → send → portal sign-in → ranged download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.conftest import make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.integration.files.files_harness import (
    MIB,
    expected,
    files_stack,
    sha256_of,
    share,
    sign_in,
    upload,
)
from tests.integration.portal.portal_harness import Stack
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer

from sealmail.files.tables import file_shares
from sealmail.store.tables import audit_log

SIZE = 50 * 1000 * 1000  # 50 MB: 48 chunks of 1 MiB, the last one short


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with files_stack(tmp_path, db_url, dns, ca, mx) as s:
        yield s


def _signed_in(stack: Stack, size: int, name: str = "Jane Doe – MRI 2026.pdf") -> tuple[str, httpx.Client]:
    with stack.api() as api:
        up = upload(api, name, size)
        assert up.status_code == 201, up.text
        file_id = str(up.json()["id"])
        mid = share(stack, api, file_id)
    link = stack.notice_link(mid)
    client = httpx.Client(base_url=stack.base_url, timeout=60, verify=default_context())
    page = sign_in(stack, link, client)
    assert page.status_code == 200, page.text
    return file_id, client


def test_streamed_upload_is_sent_through_the_portal_and_downloads_whole_and_in_ranges(stack: Stack) -> None:
    with stack.api() as api:
        up = upload(api, "Jane Doe – MRI 2026.pdf", SIZE)
        assert up.status_code == 201, up.text
        meta = up.json()
        assert meta["status"] == "ready" and meta["size"] == SIZE and meta["chunks"] == 48
        assert meta["sha256"] == sha256_of(SIZE)
        assert meta["filename"] == "Jane Doe – MRI 2026.pdf"
        mid = share(stack, api, meta["id"])
        assert api.get(f"/v1/files/{meta['id']}").json()["message_id"] == mid
    file_id = meta["id"]
    # Only ciphertext chunks on disk, and never a multi-megabyte value in the database.
    chunk_dir = stack.settings.home / "blobs" / "files" / stack.tenant.id / file_id
    assert len(list(chunk_dir.iterdir())) == 48
    assert expected(0, 64) not in (chunk_dir / "000000").read_bytes()
    link = stack.notice_link(mid)
    notice = stack.patient_sink.messages[-1].data
    assert b"MRI" not in notice and b"Jane" not in notice  # the filename stays in the portal
    with httpx.Client(base_url=stack.base_url, timeout=60, verify=default_context()) as client:
        page = sign_in(stack, link, client)
        assert f"/p/files/{file_id}" in page.text  # the message links to the file's page
        listing = client.get(f"/p/files/{file_id}")
        assert "Jane Doe – MRI 2026.pdf" in listing.text
        assert "MRI" not in listing.text.split("<title>")[1].split("</title>")[0]

        h = hashlib.sha256()
        with client.stream("GET", f"/p/files/{file_id}/download") as whole:
            assert whole.status_code == 200
            assert whole.headers["content-length"] == str(SIZE)
            assert whole.headers["accept-ranges"] == "bytes"
            assert whole.headers["content-type"] == "application/pdf"
            assert whole.headers["content-disposition"].startswith("attachment;")
            assert whole.headers["cache-control"] == "no-store"
            for piece in whole.iter_bytes():
                h.update(piece)
        assert h.hexdigest() == meta["sha256"]

        url = f"/p/files/{file_id}/download"
        first = client.get(url, headers={"Range": "bytes=0-99"})
        assert first.status_code == 206 and first.content == expected(0, 100)
        assert first.headers["content-range"] == f"bytes 0-99/{SIZE}"
        across = client.get(url, headers={"Range": f"bytes={MIB - 50}-{MIB + 49}"})
        assert across.status_code == 206 and across.content == expected(MIB - 50, 100)
        last = client.get(url, headers={"Range": "bytes=-1"})
        assert last.content == expected(SIZE - 1, 1)
        assert last.headers["content-range"] == f"bytes {SIZE - 1}-{SIZE - 1}/{SIZE}"

        # Resume: the first 30 MB arrived, then the connection broke; fetch the rest.
        offset = 30 * 1000 * 1000
        resumed = hashlib.sha256(b"".join(_prefix(offset)))
        etag = whole.headers["etag"]
        with client.stream("GET", url, headers={"Range": f"bytes={offset}-", "If-Range": etag}) as rest:
            assert rest.status_code == 206
            assert rest.headers["content-length"] == str(SIZE - offset)
            for piece in rest.iter_bytes():
                resumed.update(piece)
        assert resumed.hexdigest() == meta["sha256"]

        # "²" and "٣" are digits to str.isdigit (int() refuses the one, reads 3 for the other):
        # a header is bytes, so they come as Latin-1 or UTF-8 and must be no number here.
        hostile = ["bytes=²-".encode("latin-1"), "bytes=٣-".encode(), "bytes=-²".encode("latin-1")]
        for bad in (f"bytes={SIZE}-", "bytes=100-10", "bytes=abc-", *hostile):
            refused = client.get(url, headers={"Range": bad})
            assert refused.status_code == 416, bad
            assert refused.headers["content-range"] == f"bytes */{SIZE}"
        # An end of 5,000 digits is past any end: clipped (RFC 9110 §14.1.2), not int()'s error.
        clipped = client.get(url, headers={"Range": f"bytes={SIZE - 10}-{'9' * 5000}"})
        assert clipped.status_code == 206 and clipped.content == expected(SIZE - 10, 10)
    types = [
        e["type"] for e in stack.services.messages.list_events(stack.tenant.principal, message_id=mid).data
    ]
    assert "portal.attachment_downloaded" in types
    with stack.services.engine.connect() as conn:
        actions = list(conn.execute(sa.select(audit_log.c.action)).scalars())
    assert {"file:uploaded", "file:sent", "file:downloaded"} <= set(actions)


def _prefix(n: int) -> Iterator[bytes]:
    for start in range(0, n, MIB):
        yield expected(start, min(MIB, n - start))


def _chunk(stack: Stack, file_id: str, index: int) -> Path:
    return stack.settings.home / "blobs" / "files" / stack.tenant.id / file_id / f"{index:06d}"


@pytest.mark.hipaa("164.312(c)(1)")
def test_a_tampered_chunk_fails_the_download_and_never_serves_wrong_bytes(stack: Stack) -> None:
    size = 3 * MIB + 123
    file_id, client = _signed_in(stack, size)
    url = f"/p/files/{file_id}/download"
    with closing(client):
        blob = bytearray(_chunk(stack, file_id, 2).read_bytes())
        blob[40] ^= 0x01
        _chunk(stack, file_id, 2).write_bytes(bytes(blob))
        # A range that starts in the damaged chunk is refused before any byte is sent.
        refused = client.get(url, headers={"Range": f"bytes={2 * MIB + 5}-{2 * MIB + 10}"})
        assert refused.status_code == 500
        assert "could not be checked as intact" in refused.text
        assert refused.headers.get("content-range") is None
        # A whole download serves the intact chunks, then breaks off: what arrived is a
        # true prefix of the file, and the damaged chunk's bytes are never among it.
        got = bytearray()
        with pytest.raises(httpx.HTTPError):  # noqa: PT012 — the failure comes mid-stream
            with client.stream("GET", url) as whole:
                assert whole.status_code == 200
                for piece in whole.iter_bytes():
                    got += piece
        assert len(got) <= 2 * MIB
        assert bytes(got) == expected(0, len(got))
        # Truncation: the final chunk removed; the file fails rather than ending early.
        _chunk(stack, file_id, 3).unlink()
        tail = client.get(url, headers={"Range": f"bytes={3 * MIB}-"})
        assert tail.status_code == 500


def test_chunks_swapped_between_files_or_reordered_do_not_decrypt(stack: Stack) -> None:
    size = 2 * MIB + 10
    file_id, client = _signed_in(stack, size)
    with stack.api() as api:
        other = upload(api, "other.bin", size).json()["id"]
    url = f"/p/files/{file_id}/download"
    with closing(client):
        # Chunk 0 of another file of the same tenant, same position: bound to its file id.
        _chunk(stack, file_id, 0).write_bytes(_chunk(stack, other, 0).read_bytes())
        assert client.get(url, headers={"Range": "bytes=0-9"}).status_code == 500
        # Chunk 1 moved into position 0: bound to its index.
        _chunk(stack, file_id, 0).write_bytes(_chunk(stack, file_id, 1).read_bytes())
        assert client.get(url, headers={"Range": "bytes=0-9"}).status_code == 500
        # The intact chunk 1 still reads (only the damaged part is refused).
        ok = client.get(url, headers={"Range": f"bytes={MIB}-{MIB + 9}"})
        assert ok.status_code == 206 and ok.content == expected(MIB, 10)


def test_another_tenant_sees_404_for_every_file_route(stack: Stack) -> None:
    with stack.api() as api:
        file_id = upload(api, "scan.pdf", 1000).json()["id"]
    other = make_tenant(stack.services, name="Elsewhere", domain="elsewhere.example")
    h = {"Authorization": f"Bearer {other.api_key}"}
    with httpx.Client(base_url=stack.base_url, headers=h, verify=default_context()) as api:
        assert api.get(f"/v1/files/{file_id}").status_code == 404
        assert api.get(f"/v1/files/{file_id}/content").status_code == 404
        assert api.delete(f"/v1/files/{file_id}").status_code == 404
        sent = api.post(
            f"/v1/files/{file_id}/send",
            json={"from": "a@elsewhere.example", "to": ["patient@plain.example"], "subject": "x"},
        )
        assert sent.status_code == 404
    with stack.api() as api:
        assert api.get(f"/v1/files/{file_id}").json()["status"] == "ready"


def test_delete_crypto_shreds_the_key_and_removes_the_chunks(stack: Stack) -> None:
    file_id, client = _signed_in(stack, MIB + 1)
    url = f"/p/files/{file_id}/download"
    with closing(client):
        assert client.get(url).status_code == 200
        with stack.api() as api:
            gone = api.delete(f"/v1/files/{file_id}")
            assert gone.status_code == 200 and gone.json()["blobs_deleted"] == 2
            meta = api.get(f"/v1/files/{file_id}").json()
            assert meta["status"] == "deleted" and meta["filename"] is None
            assert api.get(f"/v1/files/{file_id}/content").status_code == 404
        assert client.get(url).status_code == 404
        assert "Jane" not in client.get("/p/files").text
    assert not (stack.settings.home / "blobs" / "files" / stack.tenant.id / file_id).exists()
    with stack.services.engine.connect() as conn:
        row = conn.execute(sa.select(file_shares).where(file_shares.c.id == file_id)).one()
    assert row.wrapped_data_key is None and row.file_key_enc is None and row.filename_enc is None


def test_the_sender_reads_back_their_own_file_with_ranges(stack: Stack) -> None:
    with stack.api() as api:
        file_id = upload(api, "notes.txt", MIB + 7, "text/plain").json()["id"]
        whole = api.get(f"/v1/files/{file_id}/content")
        assert whole.status_code == 200 and whole.content == expected(0, MIB + 7)
        part = api.get(f"/v1/files/{file_id}/content", headers={"Range": "bytes=5-"})
        assert part.status_code == 206 and part.content == expected(5, MIB + 2)
        # If-Range with a stale validator: the whole file, not a splice of two versions.
        stale = api.get(f"/v1/files/{file_id}/content", headers={"Range": "bytes=5-", "If-Range": '"x"'})
        assert stale.status_code == 200 and len(stale.content) == MIB + 7
