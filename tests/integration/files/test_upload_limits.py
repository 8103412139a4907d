"""What the upload route refuses: wrong media type, no name, over the size limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.integration.delivery.conftest import MxFarm
from tests.integration.files.files_harness import MIB, content, files_stack, upload
from tests.integration.portal.portal_harness import Stack
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.waiting import wait_until

from sealmail.files.tables import file_shares


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with files_stack(tmp_path, db_url, dns, ca, mx, max_file_bytes=3 * MIB) as s:
        yield s


def test_upload_refuses_other_media_types_and_unnamed_files(stack: Stack) -> None:
    with stack.api() as api:
        wrong = api.post("/v1/files", content=b"x", headers={"Content-Type": "text/plain"})
        assert wrong.status_code == 415
        unnamed = api.post("/v1/files", content=b"x", headers={"Content-Type": "application/octet-stream"})
        assert unnamed.status_code == 400
        assert "filename" in unnamed.json()["detail"]


def test_declared_length_over_the_limit_is_refused_before_reading(stack: Stack) -> None:
    with stack.api() as api:
        r = api.post(
            "/v1/files",
            content=b"x" * (3 * MIB + 1),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": "attachment; filename=a",
            },
        )
        assert r.status_code == 413
    with stack.services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(file_shares)).scalar_one() == 0


def test_streamed_body_over_the_limit_is_cut_off_and_forgotten(stack: Stack) -> None:
    with stack.api() as api:
        try:
            r = upload(api, "big.bin", 5 * MIB)
            assert r.status_code == 413
        except httpx.HTTPError:
            pass  # the server may close the connection while the client still writes

    def forgotten() -> bool:
        with stack.services.engine.connect() as conn:
            rows = conn.execute(sa.select(file_shares.c.status, file_shares.c.wrapped_data_key)).all()
        return len(rows) == 1 and rows[0].status == "deleted" and rows[0].wrapped_data_key is None

    wait_until(forgotten, 10, "the oversized upload was not shredded")
    folder = stack.settings.home / "blobs" / "files" / stack.tenant.id
    assert not folder.exists() or not any(folder.iterdir())


def test_names_in_rfc_5987_form_round_trip_and_paths_are_dropped(stack: Stack) -> None:
    with stack.api() as api:
        named = upload(api, "Ärztebrief Müller.pdf", 10)
        assert named.json()["filename"] == "Ärztebrief Müller.pdf"
        pathy = api.post(
            "/v1/files",
            content=content(10),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": 'attachment; filename="../../etc/passwd"',
            },
        )
        assert pathy.json()["filename"] == "passwd"
        empty = api.post(
            "/v1/files",
            content=b"",
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": "attachment; filename=e",
            },
        )
        assert empty.status_code == 201 and empty.json()["size"] == 0 and empty.json()["chunks"] == 1
        assert api.get(f"/v1/files/{empty.json()['id']}/content").content == b""
