"""A typed Python client for the Sealmail REST API (sync and asyncio, on httpx).

from sealmail.client import OutgoingMessage, SealmailClient

with SealmailClient("https://api.sealmail.example", api_key) as sm:
    accepted = sm.send_message(OutgoingMessage(from_="noreply@clinic.example", to=["p@example.net"],
                                               subject="Your results are ready", text="…", stream="phi"))
    for event in sm.list_events(message_id=accepted["id"]):
        ...
"""

from sealmail.client._core import RetryPolicy
from sealmail.client.aio import AsyncSealmailClient
from sealmail.client.errors import (
    SealmailApiError,
    SealmailClientError,
    SealmailTransportError,
)
from sealmail.client.sync import SealmailClient
from sealmail.client.types import (
    UNSET,
    Attachment,
    BatchItem,
    BulkMessage,
    BulkRecipient,
    OutgoingMessage,
    RawMessage,
)

__all__ = [
    "UNSET",
    "AsyncSealmailClient",
    "Attachment",
    "BatchItem",
    "BulkMessage",
    "BulkRecipient",
    "OutgoingMessage",
    "RawMessage",
    "RetryPolicy",
    "SealmailApiError",
    "SealmailClient",
    "SealmailClientError",
    "SealmailTransportError",
]
