"""The queue bell (``delivery/bell.py``): an idle worker hears that mail was queued — through
PostgreSQL's NOTIFY from the ``recipients`` trigger, or SQLite's largest rowid — instead of
waiting out its poll interval; without new mail the wait lasts its whole length."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.delivery.bell import bell_for
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn


def _queue(services: Services, tenant: TenantFixture) -> None:
    body = MessageIn.model_validate(
        {"from": f"front@{tenant.domain}", "to": ["pat@example.net"], "subject": "Hi", "text": "Hi."}
    )
    services.messages.submit(tenant.principal, compose.from_message(body, tenant.domain, 1000))


def test_the_bell_rings_when_mail_is_queued_and_not_otherwise(
    services: Services, tenant: TenantFixture
) -> None:
    bell = bell_for(services.engine)
    assert bell is not None

    async def go() -> tuple[float, float, float]:
        mark = bell.mark()
        await bell.wait(mark, 0.05)  # opens PostgreSQL's listener; nothing queued yet
        started = time.monotonic()
        await bell.wait(bell.mark(), 0.4)
        quiet = time.monotonic() - started
        mark = bell.mark()
        # Queued from another thread while this one waits, as another process would.
        loop = asyncio.get_running_loop()
        queued = loop.run_in_executor(None, _queue, services, tenant)
        started = time.monotonic()
        await bell.wait(mark, 20)
        rung = time.monotonic() - started
        await queued
        # Already queued before the mark: a later wait does not ring for it again.
        started = time.monotonic()
        await bell.wait(bell.mark(), 0.3)
        again = time.monotonic() - started
        await bell.close()
        return quiet, rung, again

    quiet, rung, again = asyncio.run(go())
    assert quiet >= 0.39
    assert rung < 10  # heard, not waited out (20 s)
    assert again >= 0.29
