"""Standard Webhooks signatures (spec: standard-webhooks/spec/standard-webhooks.md).

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"`` and the signature is
HMAC-SHA256 under the secret's bytes, sent as ``v1,<base64>``.  Secrets are
``whsec_<base64>`` of 24 to 64 random bytes ("Signature scheme" and "Symmetric
signatures" sections).  During rotation the header carries one signature per secret,
space-delimited, so receivers holding either secret verify ("Key rotation").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105  # the spec's prefix, not a secret
# The spec allows 24-64 bytes; 32 bytes is the HMAC-SHA256 block-size sweet spot.
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key behind ``whsec_<base64>`` (``ValueError`` if it is not one)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets_: Iterable[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per live secret, space-delimited."""
    return " ".join(sign(s, webhook_id, timestamp, body) for s in secrets_)


def headers(secrets_: Iterable[str], webhook_id: str, timestamp: int, body: bytes) -> Mapping[str, str]:
    """The three Standard Webhooks headers plus the content type.

    ``webhook-id`` is the event id, the same on every retry: the spec's idempotency key.
    ``webhook-timestamp`` is the time of *this* attempt in integer seconds, so receivers
    can reject replays outside their tolerance (the library allows five minutes).
    """
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, webhook_id, timestamp, body),
        "content-type": "application/json",
    }
