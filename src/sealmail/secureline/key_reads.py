"""Coalesced key-directory reads for SecureLine's delivery groups (issue 18).

A delivery group with a keyed recipient reads that recipient's keys fresh from the database
(a deleted key is never used from memory), in a worker thread.  The hop to the thread cost
more than the read itself, and the groups a worker starts after one claim all ask within one
pass of the event loop; so ``KeyReads`` answers what they ask in that pass with one hop and
one query per tenant.  A read always starts after every request it answers was made: a
request made once a read has begun waits for the next one, so nothing is answered from a
read older than the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

# What ``facts`` answers per address (``keydir.RecipientKeys``; generic, so no import cycle).
K = TypeVar("K")


@dataclass
class _Batch(Generic[K]):
    done: asyncio.Future[dict[str, dict[str, K]]]
    now: datetime
    # tenant -> the addresses asked for (normalized as ``facts`` does)
    wanted: dict[str, set[str]] = field(default_factory=dict)


class KeyReads(Generic[K]):
    """``facts`` off the event loop, one read for every request made in the same loop pass."""

    def __init__(self, facts: Callable[[str, Sequence[str], datetime], dict[str, K]]) -> None:
        self._facts = facts
        self._open: _Batch[K] | None = None
        self._reads: set[asyncio.Task[None]] = set()

    async def facts(self, tenant_id: str, addresses: Sequence[str], now: datetime) -> dict[str, K]:
        wanted = {a.strip().lower() for a in addresses}
        batch = self._open
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._open = _Batch(loop.create_future(), now)
            # Runs after the callbacks already queued: the other groups' first steps.
            loop.call_soon(self._start, batch)
        batch.now = max(batch.now, now)
        batch.wanted.setdefault(tenant_id, set()).update(wanted)
        # Shielded: a cancelled group must not cancel the read the others wait for.
        found = await asyncio.shield(batch.done)
        return {a: found[tenant_id][a] for a in wanted}

    def _start(self, batch: _Batch[K]) -> None:
        self._open = None  # later requests start a read of their own
        task = asyncio.get_running_loop().create_task(self._read(batch))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read(self, batch: _Batch[K]) -> None:
        try:
            found = await asyncio.to_thread(self._read_all, batch.wanted, batch.now)
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 — handed to every group that asked, as before
            batch.done.set_exception(exc)
        else:
            batch.done.set_result(found)

    def _read_all(self, wanted: dict[str, set[str]], now: datetime) -> dict[str, dict[str, K]]:
        return {tenant: self._facts(tenant, sorted(addresses), now) for tenant, addresses in wanted.items()}
