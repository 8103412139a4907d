"""RSA DKIM keys generated once per pytest worker and handed out again in later tests.

Every tenant the fixtures create registers a sending domain, and registering a domain
generates its DKIM keys (``SenderDomains.add``): an RSA-2048 key took 0.1-0.3 s on the 2-core
CI machine, in some 3,000 tests.  The keys handed out are real keys from the product's own
``generate_key`` (made the first time a test needs one); what is reused is only the prime
search.  Within one test every key is still a different key, as in production, so a test
that rotates keys or gives two tenants keys still sees them differ.  A test never sees the
key another test saw in a way it could tell: each test has its own database.

``generate_key`` imported by name (the DKIM unit tests) stays the unpooled function.
"""

from __future__ import annotations

from sealmail.crypto import dkim
from sealmail.net.dns import to_ascii_domain


class RsaKeyPool:
    """The n-th RSA key asked for in a test is the n-th key generated in this worker."""

    def __init__(self) -> None:
        self.real = dkim.generate_key
        self._pems: list[bytes] = []
        self._next = 0

    def start_test(self) -> None:
        self._next = 0

    def generate_key(self, domain: str, selector: str, algorithm: dkim.Algorithm) -> dkim.DkimKey:
        if algorithm != "rsa-sha256":
            return self.real(domain, selector, algorithm)
        if self._next == len(self._pems):
            self._pems.append(self.real(domain, selector, algorithm).private_key_pem)
        pem = self._pems[self._next]
        self._next += 1
        return dkim.DkimKey(to_ascii_domain(domain), selector, algorithm, pem)


POOL = RsaKeyPool()
