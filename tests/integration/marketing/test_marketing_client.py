"""The typed clients drive the marketing API over a real uvicorn server (sync and asyncio)."""

import asyncio
import csv
import io
from pathlib import Path

import pytest
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer
from tests.integration.marketing.test_marketing_consent import authorization

from sealmail.app import Services
from sealmail.client import AsyncSealmailClient, SealmailApiError, SealmailClient


def test_sync_client_imports_segments_and_exports(
    services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    source = tmp_path / "contacts.csv"
    source.write_text("email,city\nann@example.net,Austin\nbob@example.net,Boston\nnope,\n")
    with ApiServer(services) as server, SealmailClient(server.url, tenant.api_key, timeout=10) as sm:
        sm.define_attribute({"name": "city", "type": "text", "phi_class": "demographic"})
        report = sm.import_contacts_csv(source)
        assert (report["created"], report["failed"]) == (2, 1)
        assert report["errors"] == [{"row": 4, "field": "email", "message": report["errors"][0]["message"]}]
        found = sm.preview_rule({"attr": "city", "op": "eq", "value": "Austin"})
        assert found["count"] == 1 and found["sample"][0]["email"] == "ann@example.net"
        rows = list(csv.DictReader(io.StringIO(sm.export_contacts())))
        assert sorted(r["email"] for r in rows) == ["ann@example.net", "bob@example.net"]
        with pytest.raises(SealmailApiError) as refused:
            sm.preview_rule({"attr": "nope", "op": "eq", "value": 1})
        assert refused.value.status == 422


def test_async_client_records_consent(services: Services, tenant: TenantFixture) -> None:
    async def go(url: str) -> list[str]:
        async with AsyncSealmailClient(url, tenant.api_key, timeout=10) as sm:
            contact = await sm.save_contact({"email": "pat@example.net"})
            await sm.change_consent(contact["id"], {"purpose": "fundraising", "action": "revoke"})
            state = await sm.get_consent(contact["id"])
            return [h["action"] for h in state["history"]]

    with ApiServer(services) as server:
        assert asyncio.run(go(server.url)) == ["revoke"]


def test_the_clients_page_lists_segments_journeys_and_consent_history(
    services: Services, tenant: TenantFixture
) -> None:
    journey = {"trigger": {"type": "api_event", "event": "booked"}, "steps": [{"wait": {"hours": 2}}]}
    with ApiServer(services) as server, SealmailClient(server.url, tenant.api_key, timeout=10) as sm:
        sm.define_attribute({"name": "plan", "type": "text", "phi_class": "none"})
        for name in ("c", "a", "b"):
            sm.create_list(name)
            sm.save_segment(name, {"attr": "plan", "op": "eq", "value": "gold"})
            sm.save_journey(name, journey)
        for method in (sm.list_lists, sm.list_segments, sm.list_journeys):
            first = method(limit=2)
            rest = method(limit=2, cursor=first["next_cursor"])
            names = [r["name"] for r in first["data"] + rest["data"]]
            assert names == ["a", "b", "c"] and rest["next_cursor"] is None, method

    async def history(url: str) -> list[list[str]]:
        async with AsyncSealmailClient(url, tenant.api_key, timeout=10) as sm:
            contact = await sm.save_contact({"email": "pat@example.net"})
            for action in ("grant", "revoke", "grant"):
                await sm.change_consent(contact["id"], {"purpose": "fundraising", "action": action})
            newest = await sm.get_consent(contact["id"], limit=2)
            oldest = await sm.get_consent(contact["id"], limit=2, cursor=newest["next_cursor"])
            assert oldest["next_cursor"] is None
            return [[h["action"] for h in page["history"]] for page in (newest, oldest)]

    with ApiServer(services) as server:
        assert asyncio.run(history(server.url)) == [["revoke", "grant"], ["grant"]]


def test_sync_client_reads_back_stored_authorizations(services: Services, tenant: TenantFixture) -> None:
    with ApiServer(services) as server, SealmailClient(server.url, tenant.api_key, timeout=10) as sm:
        contact = sm.save_contact({"email": "pat@example.net"})
        made = sm.record_authorization(contact["id"], authorization())
        listed = sm.list_authorizations(contact["id"])
        assert [(a["id"], a["state"], a["signed_by"]) for a in listed["data"]] == [
            (made["id"], "active", "Pat Doe")
        ]
        with pytest.raises(SealmailApiError) as missing:
            sm.list_authorizations("ctc_nope")
        assert missing.value.status == 404
