"""OpenPGP Web Key Directory lookup (draft-koch-openpgp-webkey-service-19, §3.1).

A key for ``Joe.Doe@Example.ORG`` lives at a URL built from the z-base-32 encoded
SHA-1 of the lowercased local part.  There are two URL forms:

* advanced: ``https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/<hash>?l=Joe.Doe``
* direct:   ``https://example.org/.well-known/openpgpkey/hu/<hash>?l=Joe.Doe``

The draft says the advanced method MUST be tried first and the direct one only when
the ``openpgpkey`` sub-domain does not exist.  A sub-domain that exists but does not
answer, or answers 404, is no reason to fall back: that would let whoever controls
the apex web server (often a hosting company) answer for a domain whose owner chose
a key server.

The answer is a binary (not armored) transferable public key.  This module treats it
as opaque after a sanity check of the first packet.  A served key may carry user IDs
for other addresses; keeping only the ones that match the address looked up (see
docs/research/encryption.md §3) is the OpenPGP layer's job when it imports the key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from sealmail.net.dns import to_ascii_domain
from sealmail.net.http_client import FetchError, FetchReason, SafeHttpClient, SafeResponse
from sealmail.secureline.key_cache import (
    DEFAULT_TTL,
    DiscoveryCache,
    DiscoveryEntry,
    DiscoveryStatus,
    DiscoveryTtl,
)

WkdMethod = Literal["advanced", "direct"]
CACHE_METHOD = "wkd"
# draft §3.1 names no media type; servers send application/octet-stream.
ACCEPT = "application/octet-stream"
# The answer when neither the advanced nor the direct host exists: a fact about the
# domain (DNS), not about the address, so callers may remember it per domain.
NO_WKD_DETAIL = "the domain has no web server"

# z-base-32 (Zooko's human-oriented base-32), the alphabet the draft cites.
_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
# draft §3.1: "all upper-case ASCII characters in the local-part are mapped to
# lowercase"; non-ASCII characters are left alone.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PUBLIC_KEY_TAG = 6  # RFC 9580 §5.5.1.1: a certificate starts with a Public-Key packet


def zbase32(data: bytes) -> str:
    """Encode ``data`` in z-base-32 (bits taken most significant first, zero-padded)."""
    bits = int.from_bytes(data, "big")
    nbits = len(data) * 8
    pad = (-nbits) % 5
    bits <<= pad
    count = (nbits + pad) // 5
    return "".join(_ZBASE32[(bits >> (5 * (count - 1 - i))) & 0x1F] for i in range(count))


def split_address(address: str) -> tuple[str, str]:
    """``(local_part, domain)`` of an addr-spec; ``ValueError`` when either is missing."""
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not local or not domain:
        raise ValueError("not an email address")
    return local, domain


def wkd_hash(local_part: str) -> str:
    """The 32-character ``hu`` path component for ``local_part`` (draft §3.1)."""
    # SHA-1 here is a naming scheme, not a security property: the key itself is
    # authenticated by HTTPS and by the user-ID check on import.
    digest = hashlib.sha1(local_part.translate(_ASCII_LOWER).encode("utf-8"), usedforsecurity=False)
    return zbase32(digest.digest())


def wkd_urls(address: str) -> tuple[str, str]:
    """The advanced and direct lookup URLs for ``address``.

    The ``l`` parameter carries the local part unmodified and percent-escaped
    (draft §3.1), so a server can map it itself when the hash scheme is not enough.
    """
    local, domain = split_address(address)
    ascii_domain = to_ascii_domain(domain)
    digest = wkd_hash(local)
    query = "l=" + quote(local, safe="")
    advanced = f"https://openpgpkey.{ascii_domain}/.well-known/openpgpkey/{ascii_domain}/hu/{digest}?{query}"
    direct = f"https://{ascii_domain}/.well-known/openpgpkey/hu/{digest}?{query}"
    return advanced, direct


@dataclass(frozen=True, slots=True)
class WkdResult:
    """The outcome of one WKD lookup.  ``cert`` is binary OpenPGP when ``status`` is found."""

    status: DiscoveryStatus
    cert: bytes | None = None
    method: WkdMethod | None = None
    detail: str = ""
    cached: bool = False

    @property
    def found(self) -> bool:
        return self.status is DiscoveryStatus.FOUND

    @property
    def domain_without_wkd(self) -> bool:
        """Neither WKD host of the domain exists: no address there can have a WKD key."""
        return (
            self.status is DiscoveryStatus.NOT_FOUND and self.method is None and self.detail == NO_WKD_DETAIL
        )


def looks_like_binary_cert(data: bytes) -> bool:
    """Whether ``data`` starts with a binary Public-Key packet (RFC 9580 §4.2 header)."""
    if not data or not data[0] & 0x80:
        return False
    first = data[0]
    tag = first & 0x3F if first & 0x40 else (first >> 2) & 0x0F
    return tag == _PUBLIC_KEY_TAG


def _interpret(response: SafeResponse, method: WkdMethod) -> WkdResult:
    if response.status == 200:
        if looks_like_binary_cert(response.body):
            return WkdResult(DiscoveryStatus.FOUND, response.body, method, f"{method}: found")
        if response.body.lstrip().startswith(b"-----BEGIN PGP"):
            detail = f"{method}: the key is ASCII-armored; draft §3.1 requires binary"
        else:
            detail = f"{method}: the answer is not an OpenPGP certificate"
        return WkdResult(DiscoveryStatus.ERROR, None, method, detail)
    if response.status in (404, 410):
        return WkdResult(DiscoveryStatus.NOT_FOUND, None, method, f"{method}: HTTP {response.status}")
    if response.is_redirect:
        return WkdResult(DiscoveryStatus.ERROR, None, method, f"{method}: redirect not followed")
    return WkdResult(DiscoveryStatus.ERROR, None, method, f"{method}: HTTP {response.status}")


async def _lookup(address: str, client: SafeHttpClient) -> WkdResult:
    advanced, direct = wkd_urls(address)
    try:
        return _interpret(await client.get(advanced, accept=ACCEPT), "advanced")
    except FetchError as exc:
        # draft §3.1: fall back only when the sub-domain does not exist.  A
        # temporary DNS failure or a dead server is an error, not a reason.
        if exc.reason is not FetchReason.NO_ADDRESS:
            return WkdResult(DiscoveryStatus.ERROR, None, "advanced", f"advanced: {exc.reason.value}")
    try:
        return _interpret(await client.get(direct, accept=ACCEPT), "direct")
    except FetchError as exc:
        if exc.reason is FetchReason.NO_ADDRESS:
            return WkdResult(DiscoveryStatus.NOT_FOUND, None, None, NO_WKD_DETAIL)
        return WkdResult(DiscoveryStatus.ERROR, None, "direct", f"direct: {exc.reason.value}")


async def fetch_wkd(
    address: str,
    client: SafeHttpClient,
    *,
    cache: DiscoveryCache | None = None,
    ttl: DiscoveryTtl = DEFAULT_TTL,
    clock: Callable[[], float] = time.time,
) -> WkdResult:
    """Look up ``address`` in the Web Key Directory of its domain.

    With a ``cache``, found, not-found and error answers are all remembered for their
    TTL, so a domain without WKD costs one request per hour, not one per message.
    ``ValueError`` when ``address`` is not an email address.
    """
    split_address(address)
    now = clock()
    if cache is not None:
        entry = await cache.get(CACHE_METHOD, address, now=now)
        if entry is not None:
            method: WkdMethod | None = None
            if entry.source == "advanced":
                method = "advanced"
            elif entry.source == "direct":
                method = "direct"
            return WkdResult(entry.status, entry.cert, method, entry.detail, cached=True)
    result = await _lookup(address, client)
    if cache is not None:
        entry = DiscoveryEntry.create(
            result.status, now=now, ttl=ttl, cert=result.cert, source=result.method, detail=result.detail
        )
        await cache.put(CACHE_METHOD, address, entry)
    return result
