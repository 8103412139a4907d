"""Outbound network access: every fetch to a URL from the outside world goes through here."""

from sealmail.net.http_client import (
    AddressClass,
    FetchError,
    FetchReason,
    SafeHttpClient,
    SafeResponse,
    address_allowed,
    classify_address,
    redact_url,
)

__all__ = [
    "AddressClass",
    "FetchError",
    "FetchReason",
    "SafeHttpClient",
    "SafeResponse",
    "address_allowed",
    "classify_address",
    "redact_url",
]
