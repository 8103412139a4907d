"""The asyncio client against the real API over HTTP: the same calls, awaited."""

from __future__ import annotations

import asyncio

import pytest
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer

from sealmail.client import AsyncSealmailClient, OutgoingMessage, SealmailApiError


def test_async_client_sends_pages_and_maps_errors(api: ApiServer, tenant: TenantFixture) -> None:
    async def scenario() -> None:
        async with AsyncSealmailClient(api.url, tenant.api_key) as sm:
            msg = OutgoingMessage(from_="noreply@clinic.example", to=["a@example.net"], text="hi")
            ids = [(await sm.send_message(msg))["id"] for _ in range(3)]
            assert [m["id"] async for m in sm.list_messages(page_size=2)] == sorted(ids, reverse=True)
            assert len([e async for e in sm.list_events(page_size=1)]) == 3
            assert (await sm.get_message(ids[0]))["id"] == ids[0]
            assert (await sm.get_content(ids[0]))["text"] is not None
            assert (await sm.cancel(ids[0]))["id"] == ids[0]
            assert (await sm.get_tenant())["id"] == tenant.id
            assert [d["name"] for d in await sm.list_domains()] == [tenant.domain]
            with pytest.raises(SealmailApiError) as info:
                await sm.get_message("msg_nope")
            assert info.value.status == 404
            await sm.send_message(msg, idempotency_key="k1")
            other = OutgoingMessage(from_=msg.from_, to=["b@example.net"], text="hi")
            with pytest.raises(SealmailApiError) as info:
                await sm.send_message(other, idempotency_key="k1")
            assert info.value.slug == "idempotency-conflict"

    asyncio.run(scenario())
