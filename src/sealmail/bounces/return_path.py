"""The signed return path each recipient's copy is sent with (``ReturnPaths``).

``b+<recipient id>.<tag>@<return-path domain>`` (``domain/verp.py``).  The domain is
``return_path_domain`` when set, else ``<return_path_label>.<sender domain>``: a subdomain
of the sender's own domain keeps SPF aligned with the From domain under DMARC relaxed
alignment (RFC 7489 §3.1.2) once the customer points that subdomain's MX (and SPF) at
Sealmail; it is what Postal's ``rp.`` domain does.  What the addresses look like and which
are ours is decided here, for the worker (signing) and the gateway (receiving) alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from sealmail.domain import verp
from sealmail.domain.addresses import Address, InvalidAddress, parse_address
from sealmail.messages.queue import Claimed, QueuedMessage

# HKDF purpose of the VERP key (``SiteSecrets.key``): a link token key can never sign one.
KEY_PURPOSE = "verp"


@dataclass(frozen=True, slots=True)
class ReturnPathConfig:
    """Where signed return paths point (settings ``return_path_domain``, ``return_path_label``
    and ``fbl_local_part``; the composition root fills it in)."""

    domain: str = ""
    label: str = "bounces"
    fbl_local_part: str = "fbl"

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", self.domain.strip().lower().rstrip("."))
        object.__setattr__(self, "label", self.label.strip().lower().strip("."))
        object.__setattr__(self, "fbl_local_part", self.fbl_local_part.strip().lower())


def return_path_domain(config: ReturnPathConfig, sender_domain: str) -> str:
    """The domain signed return paths of ``sender_domain`` use (ASCII, lower case)."""
    return config.domain or f"{config.label}.{sender_domain.lower()}"


@dataclass(frozen=True, slots=True)
class ReportAddress:
    """What an envelope recipient of the inbound listener is.

    ``kind``: ``verp`` (a valid signed return path; ``recipient_id`` set), ``fbl`` (the
    feedback-loop address), ``forged`` (VERP-shaped, bad tag) or ``foreign`` (not ours).
    """

    kind: str
    recipient_id: str | None = None


class ReturnPathSigner:
    """Signs return paths for the worker and recognises them for the inbound listener."""

    def __init__(self, config: ReturnPathConfig, key: Callable[[], bytes]) -> None:
        self.config = config
        self.domain = config.domain
        self.label = config.label
        self.fbl_local_part = config.fbl_local_part
        self._load_key = key
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        # Loaded on first use (a database read), not at construction: nothing at import
        # or build time touches the database.
        with self._lock:
            if self._key is None:
                self._key = self._load_key()
            return self._key

    def domain_for(self, sender_domain: str) -> str:
        return return_path_domain(self.config, sender_domain)

    def is_return_path_domain(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        if self.domain:
            return domain == self.domain
        return domain.startswith(f"{self.label}.") and domain.count(".") >= 2

    def address(self, recipient_id: str, sender: str) -> str | None:
        try:
            parsed = parse_address(sender, "mail_from")
        except InvalidAddress:
            return None
        return f"{verp.local_part(self.key, recipient_id)}@{self.domain_for(parsed.ascii_domain)}"

    # ReturnPaths (delivery/personalize.py)
    def return_path(self, msg: QueuedMessage, recipient: Claimed) -> str | None:
        return self.address(recipient.id, msg.mail_from)

    def recognise(self, rcpt: Address) -> ReportAddress:
        """Classify an envelope recipient of the inbound listener (no database access after the key)."""
        local = rcpt.local_part
        if verp.looks_signed(local):
            # The tag is the authority; the domain it arrived at does not matter.
            recipient_id = verp.verify(self.key, local)
            return ReportAddress("verp", recipient_id) if recipient_id else ReportAddress("forged")
        if local.lower() == self.fbl_local_part and self.is_return_path_domain(rcpt.ascii_domain):
            return ReportAddress("fbl")
        return ReportAddress("foreign")
