"""The worker's SMS loop: queue reminders of unread portal messages, send what is due."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sealmail.sms.notices import PortalTexts
from sealmail.sms.service import Texting

log = logging.getLogger(__name__)


async def run_texting(
    texting: Texting, stop: asyncio.Event, reminders: PortalTexts | None = None, poll_seconds: float = 2.0
) -> None:
    try:
        while not stop.is_set():
            try:
                if reminders is not None:
                    await asyncio.to_thread(reminders.remind_unread, texting.now())
                await texting.send_due()
            except Exception as exc:  # noqa: BLE001 — the next round retries
                log.warning("sms.send_due_failed error=%s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)
    finally:
        if texting.provider is not None:
            await texting.provider.close()
