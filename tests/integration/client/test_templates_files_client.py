"""Templates, batch and bulk sending, files and single suppressions through the clients,
against the real API over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path

import pytest
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer

from sealmail.client import (
    AsyncSealmailClient,
    BatchItem,
    BulkMessage,
    BulkRecipient,
    OutgoingMessage,
    SealmailApiError,
    SealmailClient,
)

SENDER = "noreply@clinic.example"


def test_template_lifecycle_and_preview(client: SealmailClient) -> None:
    created = client.create_template("welcome", subject="Hi {{ name }}", text="Hello {{ name }}.")
    assert (created["name"], created["version"]) == ("welcome", 1)
    updated = client.update_template("welcome", subject="Hello {{ name }}", html="<p>{{ name }}</p>")
    assert updated["version"] == 2
    assert [t["version"] for t in client.list_templates()] == [2]
    assert client.get_template("welcome")["versions"] == [1, 2]
    assert client.get_template("welcome", version=1)["subject"] == "Hi {{ name }}"

    preview = client.preview_template("welcome", {"name": "Ann"})
    assert (preview["version"], preview["subject"]) == (2, "Hello Ann")
    assert client.preview_template("welcome", {"name": "Bo"}, version=1)["text"] == "Hello Bo."

    with pytest.raises(SealmailApiError) as info:
        client.create_template("welcome", subject="dup", text="dup")
    assert info.value.status == 409
    client.delete_template("welcome")
    with pytest.raises(SealmailApiError) as info:
        client.get_template("welcome")
    assert info.value.status == 404
    assert client.list_templates() == []


def test_batch_reports_each_item_and_bulk_job_reads_back(client: SealmailClient) -> None:
    client.create_template("note", subject="For {{ name }}", text="Dear {{ name }}")
    plain = OutgoingMessage(from_=SENDER, to=["a@example.net"], subject="s", text="t")
    templated = BatchItem(
        OutgoingMessage(from_=SENDER, to=["b@example.net"]), template="note", template_data={"name": "B"}
    )
    bad = OutgoingMessage(from_=SENDER, to=["not an address"], subject="s", text="t")
    result = client.send_batch([plain, templated, bad], idempotency_key="batch-1")
    assert (result["accepted"], result["failed"]) == (2, 1)
    assert [item["outcome"] for item in result["data"]] == ["accepted", "accepted", "error"]
    assert result["data"][2]["status"] == 422
    sent = result["data"][1]["message"]["id"]
    assert client.get_content(sent)["subject"] == "For B"
    # The same key and body again is answered from the first request: nothing sent twice.
    again = client.send_batch([plain, templated, bad], idempotency_key="batch-1")
    assert again["data"][0]["message"]["id"] == result["data"][0]["message"]["id"]
    assert again["data"][0].get("replayed") is True

    bulk = BulkMessage(
        from_=SENDER,
        template="note",
        template_data={"name": "everyone"},
        recipients=[
            BulkRecipient("c@example.net", {"name": "C"}),
            BulkRecipient("d@example.net"),
            BulkRecipient("broken@@example.net"),
        ],
    )
    job = client.send_bulk(bulk)
    assert job["id"] and job["total"] == 3
    read = client.get_bulk(job["id"])
    assert (read["accepted"], read["failed"]) == (2, 1)
    assert [e["index"] for e in read["errors"]] == [2]
    assert read["template"] is not None and read["template"]["name"] == "note"
    with pytest.raises(SealmailApiError) as info:
        client.get_bulk("bulk_nope")
    assert info.value.status == 404


def test_streamed_upload_and_download_round_trip(client: SealmailClient, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several client chunks and server chunks
    source = tmp_path / "scan results.bin"
    source.write_bytes(data)
    info = client.upload_file(source, content_type="application/pdf")
    assert info["status"] == "ready"
    assert (info["filename"], info["size"]) == ("scan results.bin", len(data))
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert client.get_file(info["id"])["content_type"] == "application/pdf"

    target = tmp_path / "out.bin"
    assert client.download_file(info["id"], target) == len(data)
    assert target.read_bytes() == data

    # A file object works both ways too; the caller's objects stay open.
    upload = io.BytesIO(b"prefix" + data[:1000])
    upload.seek(6)
    second = client.upload_file(upload, filename="naïve résumé.txt")
    assert (second["filename"], second["size"]) == ("naïve résumé.txt", 1000)
    sink = io.BytesIO()
    client.download_file(second["id"], sink)
    assert sink.getvalue() == data[:1000]
    assert not upload.closed and not sink.closed

    deleted = client.delete_file(second["id"])
    assert (deleted["id"], deleted["blobs_deleted"] > 0) == (second["id"], True)
    missing = tmp_path / "missing.bin"
    with pytest.raises(SealmailApiError) as err:
        client.download_file("file_nope", missing)
    assert err.value.status == 404
    assert not missing.exists()
    with pytest.raises(ValueError, match="name the file"):
        client.upload_file(io.BytesIO(b"x"))


def test_file_is_sent_as_a_portal_message(client: SealmailClient, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(b"%PDF-1.7 results")
    file_id = client.upload_file(source)["id"]
    sent = client.send_file(file_id, from_=SENDER, to=["patient@example.net"], subject="Your report")
    assert sent["file_id"] == file_id
    assert [r["email"] for r in sent["recipients"]] == ["patient@example.net"]
    assert client.get_file(file_id)["message_id"] == sent["id"]
    assert client.portal_status(sent["id"])["message_id"] == sent["id"]


def test_single_suppression_reads_back(client: SealmailClient) -> None:
    added = client.add_suppression("gone@example.net", stream="phi")
    assert client.get_suppression(added["id"])["address"] == "gone@example.net"
    with pytest.raises(SealmailApiError) as info:
        client.get_suppression("sup_nope")
    assert info.value.status == 404


def test_async_client_templates_bulk_and_files(api: ApiServer, tenant: TenantFixture, tmp_path: Path) -> None:
    data = os.urandom(700_000)
    source = tmp_path / "a.bin"
    source.write_bytes(data)

    async def scenario() -> None:
        async with AsyncSealmailClient(api.url, tenant.api_key) as sm:
            await sm.create_template("t", subject="S {{ n }}", text="T {{ n }}")
            assert (await sm.update_template("t", subject="S2 {{ n }}", text="T2"))["version"] == 2
            assert [t["name"] for t in await sm.list_templates()] == ["t"]
            assert (await sm.get_template("t", version=1))["versions"] == [1, 2]
            assert (await sm.preview_template("t", {"n": 1}))["subject"] == "S2 1"
            batch = await sm.send_batch(
                [BatchItem(OutgoingMessage(from_=SENDER, to=["x@example.net"]), "t", template_data={"n": 2})]
            )
            assert batch["accepted"] == 1, batch
            job = await sm.send_bulk(
                BulkMessage(
                    from_=SENDER,
                    subject="Hi {{ n }}",
                    text="x",
                    recipients=[BulkRecipient("y@example.net", {"n": 3})],
                )
            )
            read = await sm.get_bulk(job["id"])
            assert read["accepted"] == 1, read
            await sm.delete_template("t")
            assert await sm.list_templates() == []

            with source.open("rb") as handle:
                info = await sm.upload_file(handle)
            assert (info["filename"], info["size"]) == ("a.bin", len(data))
            assert (await sm.get_file(info["id"]))["sha256"] == hashlib.sha256(data).hexdigest()
            target = tmp_path / "b.bin"
            assert await sm.download_file(info["id"], target) == len(data)
            assert target.read_bytes() == data
            sent = await sm.send_file(info["id"], from_=SENDER, to=["z@example.net"], subject="s")
            assert sent["file_id"] == info["id"]
            assert (await sm.delete_file(info["id"]))["status"] in {"deleted", "shredded"}

            added = await sm.add_suppression("q@example.net")
            assert (await sm.get_suppression(added["id"]))["id"] == added["id"]

    asyncio.run(scenario())
