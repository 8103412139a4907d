"""What intake stores: a validated submission, its DLP screening and its idempotency key.

Shared by every door (API, SMTP gateway, DSNs, portal replies, file shares, templates),
so it sits apart from the service that stores it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any, Literal

from sealmail.domain.secureline import Protection
from sealmail.domain.tls_policy import Stream, TlsPolicy, TlsRequirement


@dataclass(frozen=True, slots=True)
class EnvelopeRecipient:
    address: str  # as given (may be UTF-8)
    ascii_domain: str
    kind: Literal["to", "cc", "bcc", "env"]


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated message ready to store, whichever door it came through."""

    stream: Stream
    source: Literal["api", "smtp", "dsn", "system", "portal", "form"]
    mail_from: str
    header_from: str
    recipients: tuple[EnvelopeRecipient, ...]
    raw: bytes
    message_id_header: str
    tls_policy: TlsPolicy | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    send_at: datetime | None = None
    expires_at: datetime | None = None
    # Deliver even to suppressed addresses (audited; not on the broadcast stream).
    bypass_suppressions: bool = False
    # Every From and Sender mailbox of a raw message; each is checked like header_from.
    header_senders: tuple[str, ...] = ()
    # RFC 8689: the REQUIRETLS MAIL parameter or a "TLS-Required: No" header field.
    tls_required: TlsRequirement | None = None
    # "secure": encrypted (OpenPGP/S/MIME) or the portal for every recipient, never TLS alone.
    protection: Protection = Protection.AUTO
    # Per recipient (lower-cased address): how a portal notice goes — email | sms | both.
    notices: Mapping[str, str] = field(default_factory=dict)
    # ``raw``'s header block as intake parsed it (``mime.parse_head``; a raw submission), so
    # DLP does not parse it again; fields prepended by ``complete_raw`` are not in it.  Read
    # only: ``extract`` works on a copy.
    head: Message | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    request_hash: str


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Screening:
    """The DLP verdict as intake needs it: an action and which detectors fired where."""

    action: str  # none | require_encryption | portal_only | quarantine | block
    findings: tuple[dict[str, Any], ...] = ()
    reason: str = ""


Screen = Callable[[str, Submission], Screening]
