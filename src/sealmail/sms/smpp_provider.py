"""The SMPP 3.4 provider: texts as ``submit_sm`` on one bound transceiver session."""

from __future__ import annotations

from sealmail.sms.providers import (
    InboundText,
    OutboundText,
    ProviderEvents,
    ProviderReply,
    ReceiptIn,
    ReceiptState,
)
from sealmail.sms.smpp import pdu
from sealmail.sms.smpp.client import SmppError, SmppOptions, SmppSession

STATES = {
    "DELIVRD": ReceiptState.DELIVERED,
    "UNDELIV": ReceiptState.FAILED,
    "REJECTD": ReceiptState.FAILED,
    "DELETED": ReceiptState.FAILED,
    "EXPIRED": ReceiptState.EXPIRED,
}


class SmppProvider:
    name = "smpp"

    def __init__(self, options: SmppOptions, events: ProviderEvents) -> None:
        self.events = events
        self.session = SmppSession(options, self._delivered)

    async def send(self, text: OutboundText) -> ProviderReply:
        message = pdu.ShortMessage(text.source, text.destination, text.text, registered_delivery=1)
        try:
            ids = await self.session.submit(message)
        except SmppError as exc:
            status = f"{exc.status:#010x}" if exc.status is not None else "link"
            return ProviderReply(False, "", status, str(exc))
        # The trail names the last segment: its receipt arrives once the whole text has.
        return ProviderReply(True, ids[-1], f"{pdu.Status.OK:#010x}", segments=len(ids))

    async def _delivered(self, message: pdu.ShortMessage) -> None:
        if message.is_receipt:
            receipt = pdu.parse_receipt(message)
            if receipt is not None:
                state = STATES.get(receipt.state, ReceiptState.SENT)
                await self.events.receipt(
                    ReceiptIn(self.name, receipt.message_id, state, receipt.state, receipt.error)
                )
            return
        await self.events.inbound(InboundText(self.name, message.source, message.destination, message.text))

    async def close(self) -> None:
        await self.session.close()
