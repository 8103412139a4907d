"""Whether a URL's host may be configured as an outbound destination (webhooks).

The SSRF-safe client (:mod:`sealmail.net.http_client`) vets every address again at
connect time, so DNS rebinding cannot get past it; this check exists so that an
obviously internal endpoint (``http://169.254.169.254``, ``http://10.0.0.1``,
``https://db.internal``, a name that resolves to loopback) is refused when it is
*configured*, with a 422 naming the rule, rather than accepted and failing forever at send.

The policy is the client's own (:func:`classify_address`, ``allow_loopback`` admitting
loopback and nothing else).  A name that cannot be resolved right now is accepted: the
record may not exist yet, and the send-time check still decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import dns.exception
import dns.nameserver
import dns.resolver

from sealmail.net.address_policy import is_loopback_host
from sealmail.net.http_client import AddressClass, _is_ip, classify_address

# Names that never leave the site: RFC 6761 §6.3 localhost, RFC 6762 .local (mDNS),
# RFC 8375 home.arpa, ICANN's private-use .internal (2024) and the common de-facto ones.
_INTERNAL_SUFFIXES: Final = (".local", ".internal", ".home.arpa", ".lan", ".intranet", ".corp", ".private")
RULE: Final = "webhook endpoints must be public Internet addresses (no loopback, private or link-local hosts)"


class DestinationVetter:
    """Refuse non-public hosts; ``nameservers`` ``None`` means the system's resolv.conf."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        nameservers: Sequence[tuple[str, int]] | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.allow_loopback = allow_loopback
        self.nameservers = list(nameservers) if nameservers else None
        self.timeout = timeout

    def refusal(self, host: str) -> str | None:
        """Why ``host`` may not be a destination, or None when it may."""
        name = host.strip("[]").rstrip(".").lower()
        if _is_ip(name):
            return self._address_refusal(name)
        if is_loopback_host(name):
            return None if self.allow_loopback else f"the host is a loopback name; {RULE}"
        if "." not in name or name.endswith(_INTERNAL_SUFFIXES):
            return f"the host is an internal name; {RULE}"
        for address in self._resolve(name):
            refused = self._address_refusal(address)
            if refused:
                # Any bad address refuses the name, as at send time: the order can flip.
                return f"the host resolves to {refused.removeprefix('the host is ')}"
        return None

    def _address_refusal(self, address: str) -> str | None:
        cls = classify_address(address)
        if cls is AddressClass.PUBLIC or (self.allow_loopback and cls is AddressClass.LOOPBACK):
            return None
        return f"the host is {'an' if cls.value[0] in 'aeiou' else 'a'} {cls.value} address; {RULE}"

    def _resolve(self, name: str) -> list[str]:
        resolver = dns.resolver.Resolver(configure=self.nameservers is None)
        if self.nameservers is not None:
            resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in self.nameservers]
        resolver.timeout = resolver.lifetime = self.timeout
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = resolver.resolve(name, rdtype, search=False)
            except (dns.exception.DNSException, OSError):
                # NXDOMAIN, no answer, timeout: unknown now; the send-time check decides.
                continue
            found.extend(rr.to_text() for rr in answer)
        return found
