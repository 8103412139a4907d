"""Delivery outcomes as values (Stalwart's ``Status``, Mailman's temporary/permanent).

A recipient whose destination cannot meet the TLS policy is an ``Attempt`` with
``status=DEFERRED`` (or ``FAILED``) and ``reason="tls_required"``, not an exception.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from sealmail.domain.tls_policy import VerifiedBy


class AttemptStatus(enum.StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"  # temporary: try again later
    FAILED = "failed"  # permanent: bounce


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What the TLS session of an attempt looked like."""

    version: str | None = None  # e.g. "TLSv1.3"; None when plaintext
    cipher: str | None = None
    verified: bool = False
    verified_by: VerifiedBy = VerifiedBy.NONE
    # SHA-256 of the server's leaf certificate (DER, hex): proof of delivery names it.
    peer_cert_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of trying to deliver to one recipient once.

    ``reason`` is a stable machine token (``tls_required``, ``invalid_recipient``,
    ``dns_failure``, ``connection_failed``, ``rate_limited``, ``null_mx`` …);
    ``detail`` is a human-readable line that never contains message content.
    """

    recipient: str
    status: AttemptStatus
    reason: str
    detail: str = ""
    smtp_code: int | None = None
    enhanced_code: str | None = None
    reply: str | None = None
    mx_host: str | None = None
    mx_ip: str | None = None
    tls: TlsInfo = TlsInfo()
    # A destination-level failure (connect, handshake, DNS) feeds the circuit breaker;
    # a recipient-level refusal (550 5.1.1) does not.
    destination_failure: bool = False
    # SHA-256 of the bytes handed to DATA (hex), for the proof of delivery.
    sent_sha256: str | None = None


def with_sent(a: Attempt, sent_sha256: str | None) -> Attempt:
    """``a`` with ``sent_sha256``: every transaction's attempts get it, and a dataclass
    ``replace`` (fields looked up by name, then keyword ``__init__``) cost three times this."""
    return Attempt(
        a.recipient,
        a.status,
        a.reason,
        a.detail,
        a.smtp_code,
        a.enhanced_code,
        a.reply,
        a.mx_host,
        a.mx_ip,
        a.tls,
        a.destination_failure,
        sent_sha256,
    )


def sent_digest(data: bytes | None) -> str | None:
    """SHA-256 (hex) of bytes that went on the wire, or None when there were none."""
    return hashlib.sha256(data).hexdigest() if data else None
