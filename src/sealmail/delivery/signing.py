"""DKIM at delivery: every tenant message leaves signed by its From domain, or is held.

Signing happens last, after encryption, over the canonical bytes the transport sends
(``domain/wire.py``), so what a receiver verifies is exactly what crossed the wire.
"""

from __future__ import annotations

import structlog

from sealmail.domain.wire import canonical_message, prepend_lines
from sealmail.messages.queue import QueuedMessage
from sealmail.secureline.identities import Identities

log = structlog.get_logger("sealmail.secureline")

# Sources of tenant-submitted mail, whose From domain intake checked is a verified
# sender domain of the tenant.
TENANT_SOURCES = frozenset({"api", "smtp"})


def _from_domain(msg: QueuedMessage) -> str:
    return (msg.header_from or msg.mail_from).rpartition("@")[2].lower()


class DkimStep:
    def __init__(self, identities: Identities, enabled: bool = True) -> None:
        self.identities = identities
        self.enabled = enabled

    def signer_cached(self, msg: QueuedMessage) -> bool:
        """True when ``unsignable(msg)`` is None and known without I/O."""
        domain = _from_domain(msg)
        if not self.enabled or not domain or msg.source not in TENANT_SOURCES:
            return True
        return self.identities.cached_dkim_signer(msg.tenant_id, domain) is not None

    def unsignable(self, msg: QueuedMessage) -> str | None:
        """Why this message must not leave, when its From domain has no DKIM key.

        Unsigned mail from a domain that publishes DMARC fails it (RFC 7489 §4.2): the
        message is held (deferred, so it goes once keys exist) rather than sent unsigned.
        """
        domain = _from_domain(msg)
        if not self.enabled or not domain or msg.source not in TENANT_SOURCES:
            # Mail Sealmail writes itself (DSNs, alerts, portal mail) may come from the
            # reporting host's name, which is no tenant's sender domain: signed when a
            # key exists, never held for want of one.
            return None
        if self.identities.dkim_signer(msg.tenant_id, domain):
            return None
        log.warning("dkim.no_key", tenant_id=msg.tenant_id, domain=domain)
        return (
            f"dkim: {domain} has no DKIM signing key, so the message is held; create one with "
            f"`sealmail domains verify {domain}` or POST /v1/domains/{domain}/dkim"
        )

    def sign(self, msg: QueuedMessage, payload: bytes) -> bytes:
        # Canonical first, so the DKIM signature covers exactly the bytes sent (wire.py).
        payload = canonical_message(payload)
        if not self.enabled:
            return payload
        domain = _from_domain(msg)
        if not domain:
            return payload
        signer = self.identities.dkim_signer(msg.tenant_id, domain)
        if signer is None:
            log.warning("dkim.no_key", tenant_id=msg.tenant_id, domain=domain)
            return payload
        # On the event loop: handing the RSA signature to a thread (the GIL is released while
        # it runs) let the loop serve other deliveries meanwhile, but each hand-off cost more
        # CPU than it freed — end to end on 2 cores, with the gateway on the other one, every
        # path was slower (bench/README.md, "Ninth pass").  Already canonical: the signer need
        # not scan the whole message again, and the signed message stays marked canonical, so
        # the SMTP client's check does not either.
        fields = signer.wire_fields(payload)
        return prepend_lines(fields, payload)
