"""The typed clients (sync and asyncio, over a real uvicorn server) and ``sealmail suppressions``."""

from __future__ import annotations

import asyncio
import csv
import io
import stat
from pathlib import Path

import pytest
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer
from typer.testing import CliRunner

from sealmail.app import Services
from sealmail.cli import app as sealmail_cli
from sealmail.client import AsyncSealmailClient, OutgoingMessage, SealmailApiError, SealmailClient
from sealmail.config import Settings

runner = CliRunner()


def test_sync_client_adds_lists_exports_and_removes(services: Services, tenant: TenantFixture) -> None:
    with ApiServer(services) as server, SealmailClient(server.url, tenant.api_key, timeout=10) as sm:
        added = sm.add_suppression("Jane+x@example.net", stream="broadcast", reason="unsubscribe")
        assert (added["address"], added["stream"], added["reason"]) == (
            "jane+x@example.net",
            "broadcast",
            "unsubscribe",
        )
        sm.add_suppression("bob@example.net")
        assert sorted(s["address"] for s in sm.list_suppressions(page_size=1)) == [
            "bob@example.net",
            "jane+x@example.net",
        ]
        assert [s["address"] for s in sm.list_suppressions(stream="broadcast")] == ["jane+x@example.net"]
        rows = list(csv.DictReader(io.StringIO(sm.export_suppressions())))
        assert {r["address"] for r in rows} == {"bob@example.net", "jane+x@example.net"}
        sm.remove_suppression("jane+x@example.net", stream="broadcast")
        with pytest.raises(SealmailApiError) as missing:
            sm.remove_suppression("jane+x@example.net", stream="broadcast")
        assert missing.value.status == 404
        assert [s["address"] for s in sm.list_suppressions()] == ["bob@example.net"]
        domain = "clinic.example"
        blocked = sm.send_message(
            OutgoingMessage(from_=f"noreply@{domain}", to=["bob@example.net"], text="t")
        )
        assert [r["status"] for r in blocked["recipients"]] == ["rejected"]
        bypassed = sm.send_message(
            OutgoingMessage(
                from_=f"noreply@{domain}", to=["bob@example.net"], text="t", bypass_suppressions=True
            )
        )
        assert [r["status"] for r in bypassed["recipients"]] == ["queued"]


def test_async_client_does_the_same(services: Services, tenant: TenantFixture) -> None:
    async def go(url: str) -> list[str]:
        async with AsyncSealmailClient(url, tenant.api_key, timeout=10) as sm:
            await sm.add_suppression("jane@example.net", stream="phi")
            listed = [s["address"] async for s in sm.list_suppressions()]
            assert "jane@example.net" in await sm.export_suppressions(stream="phi")
            await sm.remove_suppression("jane@example.net", stream="phi")
            return listed

    with ApiServer(services) as server:
        assert asyncio.run(go(server.url)) == ["jane@example.net"]


def test_cli_add_list_export_remove(
    settings: Settings, services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    env = {"SEALMAIL_HOME": str(settings.home), "SEALMAIL_DATABASE_URL": settings.database_url}
    added = runner.invoke(
        sealmail_cli, ["suppressions", "add", "Jane@example.net", "--stream", "phi"], env=env
    )
    assert added.exit_code == 0, added.output
    assert "suppressed" in added.output
    listed = runner.invoke(sealmail_cli, ["suppressions", "list"], env=env)
    assert "jane@example.net" in listed.output and "phi" in listed.output
    target = tmp_path / "out.csv"
    exported = runner.invoke(sealmail_cli, ["suppressions", "export", "-o", str(target)], env=env)
    assert exported.exit_code == 0, exported.output
    assert "jane@example.net,phi,manual,cli" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    bad = runner.invoke(sealmail_cli, ["suppressions", "add", "nope", "--stream", "phi"], env=env)
    assert bad.exit_code == 2 and "address" in bad.output
    removed = runner.invoke(
        sealmail_cli, ["suppressions", "remove", "jane@example.net", "--stream", "phi"], env=env
    )
    assert removed.exit_code == 0, removed.output
    again = runner.invoke(
        sealmail_cli, ["suppressions", "remove", "jane@example.net", "--stream", "phi"], env=env
    )
    assert again.exit_code == 2
