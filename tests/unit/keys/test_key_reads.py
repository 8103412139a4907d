"""``KeyReads``: the delivery groups asking in one pass of the event loop share one read
(one thread hop, one query per tenant), and no request is answered from a read that began
before it was made (issue 18)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.waiting import wait_until_async, yield_to_loop

from sealmail.secureline.key_reads import KeyReads

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Directory:
    """A stand-in ``KeyDirectory.facts``: answers "tenant:address@version" and logs each read."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, tuple[str, ...], datetime]] = []
        self.version = 1
        self.gate: threading.Event | None = None
        self.fail = False

    def facts(self, tenant_id: str, addresses: Sequence[str], now: datetime) -> dict[str, str]:
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("database is gone")
        self.reads.append((tenant_id, tuple(addresses), now))
        return {a: f"{tenant_id}:{a}@{self.version}" for a in addresses}


def test_groups_asking_together_share_one_read_per_tenant() -> None:
    directory = Directory()
    reads = KeyReads(directory.facts)

    async def main() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        return await asyncio.gather(
            reads.facts("t1", ["Pat@patients.example "], NOW),
            reads.facts("t1", ["sam@patients.example", "pat@patients.example"], NOW + timedelta(seconds=1)),
            reads.facts("t2", ["pat@patients.example"], NOW),
        )

    pat, both, other = asyncio.run(main())
    assert pat == {"pat@patients.example": "t1:pat@patients.example@1"}
    assert both == {
        "sam@patients.example": "t1:sam@patients.example@1",
        "pat@patients.example": "t1:pat@patients.example@1",
    }
    assert other == {"pat@patients.example": "t2:pat@patients.example@1"}
    # One read per tenant, at the latest of the groups' times.
    later = NOW + timedelta(seconds=1)
    assert sorted(directory.reads) == [
        ("t1", ("pat@patients.example", "sam@patients.example"), later),
        ("t2", ("pat@patients.example",), later),
    ]


def test_a_request_made_while_a_read_runs_waits_for_a_read_of_its_own() -> None:
    """A key deleted (or replaced) after the first read began is never answered from it."""
    directory = Directory()
    gate = directory.gate = threading.Event()
    reads = KeyReads(directory.facts)

    async def main() -> tuple[dict[str, str], dict[str, str]]:
        first = asyncio.create_task(reads.facts("t1", ["pat@patients.example"], NOW))
        await wait_until_async(lambda: bool(reads._reads), 10, "the first read started")
        directory.version = 2  # the key changes while the first read is under way
        second = asyncio.create_task(reads.facts("t1", ["pat@patients.example"], NOW))
        await yield_to_loop(1)  # the second request is made
        gate.set()
        return await first, await second

    first, second = asyncio.run(main())
    assert len(directory.reads) == 2
    assert second == {"pat@patients.example": "t1:pat@patients.example@2"}
    assert first["pat@patients.example"].startswith("t1:pat@patients.example@")


def test_a_failed_read_fails_every_group_that_asked_and_the_next_read_is_fresh() -> None:
    directory = Directory()
    directory.fail = True
    reads = KeyReads(directory.facts)

    async def ask() -> tuple[dict[str, str] | BaseException, dict[str, str] | BaseException]:
        return await asyncio.gather(
            reads.facts("t1", ["a@patients.example"], NOW),
            reads.facts("t1", ["b@patients.example"], NOW),
            return_exceptions=True,
        )

    results = asyncio.run(ask())
    assert all(isinstance(r, RuntimeError) for r in results)
    directory.fail = False
    assert list(asyncio.run(ask())) == [
        {"a@patients.example": "t1:a@patients.example@1"},
        {"b@patients.example": "t1:b@patients.example@1"},
    ]


def test_a_cancelled_group_does_not_cancel_the_read_the_others_wait_for() -> None:
    directory = Directory()
    reads = KeyReads(directory.facts)

    async def main() -> dict[str, str]:
        doomed = asyncio.create_task(reads.facts("t1", ["a@patients.example"], NOW))
        kept = asyncio.create_task(reads.facts("t1", ["b@patients.example"], NOW))
        await yield_to_loop(1)  # both requests are made
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return await kept

    assert asyncio.run(main()) == {"b@patients.example": "t1:b@patients.example@1"}
