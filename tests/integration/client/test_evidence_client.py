"""The Python client's evidence methods against a real API server: retention (the floor
refused as a typed error), holds, the plain-mail register, reports and the pack."""

from __future__ import annotations

import asyncio
import io
import zipfile

import pytest
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer

from sealmail.client import AsyncSealmailClient, SealmailApiError, SealmailClient


def test_sync_client_covers_the_evidence_routes(client: SealmailClient) -> None:
    with pytest.raises(SealmailApiError) as refused:
        client.set_retention(30, 365, 2192)
    assert refused.value.status == 422
    assert client.set_retention(30, 2192, 2192)["content_days"] == 30
    assert client.get_retention()["metadata_days"] == 2192
    hold = client.place_legal_hold("recipient", "subpoena 4", "pat@home.example")
    assert [h["id"] for h in client.list_legal_holds(active=True)] == [hold["id"]]
    assert client.release_legal_hold(hold["id"])["active"] is False
    assert client.purge_retention()["shredded"] == 0
    assert "unencrypted" in client.plain_warning()["text"].lower()
    made = client.record_plain_request("pat@home.example", "signed form")
    assert client.get_plain_request(made["id"])["state"] == "confirmed"
    assert [r["id"] for r in client.list_plain_requests(address="pat@home.example")] == [made["id"]]
    assert client.revoke_plain_request(made["id"], "asked")["state"] == "revoked"
    csv_text = client.evidence_report("retention").decode()
    assert "legal_hold" in csv_text and hold["id"] in csv_text
    pack = client.evidence_pack("2026")
    assert "manifest.json" in zipfile.ZipFile(io.BytesIO(pack)).namelist()


def test_async_client_reads_a_filtered_report(api: ApiServer, tenant: TenantFixture) -> None:
    from datetime import UTC, datetime

    async def go() -> bytes:
        async with AsyncSealmailClient(api.url, tenant.api_key, timeout=10) as sm:
            return await sm.evidence_report(
                "secured", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
                fmt="pdf", filters={"stream": "phi"},
            )  # fmt: skip

    assert asyncio.run(go()).startswith(b"%PDF-1.4")


def test_both_clients_set_anchor_recipients_and_sign_off_a_review(
    client: SealmailClient, api: ApiServer, tenant: TenantFixture
) -> None:
    with pytest.raises(SealmailApiError) as refused:
        client.set_anchor_recipients(["not an address"])
    assert refused.value.status in (400, 422)
    assert client.set_anchor_recipients(["co@clinic.example"])["anchor_recipients"] == ["co@clinic.example"]
    assert client.get_anchor_recipients()["anchor_recipients"] == ["co@clinic.example"]
    month = "2026-11"
    assert client.activity_review(month).get("sign_off") is None
    signed = client.sign_off_activity_review(month, "Reviewed every sign-in and export; nothing found.")
    assert signed["month"] == month

    async def go() -> dict[str, object]:
        async with AsyncSealmailClient(api.url, tenant.api_key, timeout=10) as sm:
            return await sm.activity_review(month)

    assert asyncio.run(go())["sign_off"] is not None
