"""The development provider: texts are kept, not sent (``sms_provider = "capture"``).

Like the mail capture sink, it lets ``make run`` show the whole flow on one machine:
each text is accepted at once and reported delivered, and ``sealmail captured --sms``
prints what would have reached the phone.
"""

from __future__ import annotations

import asyncio

from sealmail.sms.providers import OutboundText, ProviderEvents, ProviderReply, ReceiptIn, ReceiptState


class CaptureProvider:
    name = "capture"

    def __init__(self, events: ProviderEvents) -> None:
        self.events = events
        self._pending: set[asyncio.Task[None]] = set()

    async def send(self, text: OutboundText) -> ProviderReply:
        provider_id = f"cap-{text.sms_id}"
        # Reported as a receipt would be: after the reply (the service keeps early receipts).
        task = asyncio.create_task(
            self.events.receipt(ReceiptIn(self.name, provider_id, ReceiptState.DELIVERED, "DELIVRD"))
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return ProviderReply(True, provider_id, "captured")

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
