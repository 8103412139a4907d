"""Look up a key on a Verifying Keyserver (the Hagrid "VKS" API, keys.openpgp.org).

``GET /vks/v1/by-email/<percent-encoded address>`` answers 200 with an ASCII-armored
certificate, 404 when there is none, 429 when rate-limited.  A VKS server publishes
an identity only after its owner confirmed the address by mail, which is why it is
worth asking at all; a 404 therefore means "no key" or "address never confirmed",
and the two cannot be told apart (hagrid issue #153) — both mean no key for us.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from sealmail.net.http_client import FetchError, SafeHttpClient, redact_url
from sealmail.secureline.key_cache import (
    DEFAULT_TTL,
    DiscoveryCache,
    DiscoveryEntry,
    DiscoveryStatus,
    DiscoveryTtl,
)
from sealmail.secureline.wkd import split_address

CACHE_METHOD = "vks"
ACCEPT = "application/pgp-keys"
_ARMOR_HEADER = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


@dataclass(frozen=True, slots=True)
class VksResult:
    """The outcome of one VKS lookup; ``cert`` is the armored certificate when found."""

    status: DiscoveryStatus
    cert: bytes | None = None
    detail: str = ""
    cached: bool = False

    @property
    def found(self) -> bool:
        return self.status is DiscoveryStatus.FOUND


def vks_url(address: str, base_url: str) -> str:
    """The by-email lookup URL on the keyserver at ``base_url`` (e.g. https://keys.openpgp.org)."""
    split_address(address)
    return f"{base_url.rstrip('/')}/vks/v1/by-email/{quote(address.strip(), safe='')}"


async def _lookup(address: str, base_url: str, client: SafeHttpClient) -> VksResult:
    url = vks_url(address, base_url)
    server = redact_url(base_url)
    try:
        response = await client.get(url, accept=ACCEPT)
    except FetchError as exc:
        return VksResult(DiscoveryStatus.ERROR, None, f"{server}: {exc.reason.value}")
    if response.status == 200:
        if response.body.lstrip().startswith(_ARMOR_HEADER):
            return VksResult(DiscoveryStatus.FOUND, response.body, f"{server}: found")
        return VksResult(DiscoveryStatus.ERROR, None, f"{server}: the answer is not an armored key")
    if response.status == 404:
        return VksResult(DiscoveryStatus.NOT_FOUND, None, f"{server}: HTTP 404")
    if response.status == 429:
        return VksResult(DiscoveryStatus.ERROR, None, f"{server}: rate limited (HTTP 429)")
    return VksResult(DiscoveryStatus.ERROR, None, f"{server}: HTTP {response.status}")


async def fetch_vks(
    address: str,
    base_url: str,
    client: SafeHttpClient,
    *,
    cache: DiscoveryCache | None = None,
    ttl: DiscoveryTtl = DEFAULT_TTL,
    clock: Callable[[], float] = time.time,
) -> VksResult:
    """Ask the keyserver at ``base_url`` for the key of ``address``.

    Answers are cached like WKD's (negative answers too), so a keyserver's rate
    limit is not spent on addresses it already said it does not know.
    ``ValueError`` when ``address`` is not an email address.
    """
    split_address(address)
    now = clock()
    if cache is not None:
        entry = await cache.get(CACHE_METHOD, address, now=now)
        if entry is not None:
            return VksResult(entry.status, entry.cert, entry.detail, cached=True)
    result = await _lookup(address, base_url, client)
    if cache is not None:
        await cache.put(
            CACHE_METHOD,
            address,
            DiscoveryEntry.create(
                result.status, now=now, ttl=ttl, cert=result.cert, source=base_url, detail=result.detail
            ),
        )
    return result
