"""WKD/VKS discovery of recipients' OpenPGP certificates, stored into the key directory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog

from sealmail.errors import ValidationFailed
from sealmail.net.dns import to_ascii_domain
from sealmail.net.http_client import SafeHttpClient
from sealmail.secureline.key_cache import DEFAULT_TTL, DiscoveryEntry, DiscoveryStatus, DiscoveryTtl
from sealmail.secureline.keydir import DbDiscoveryCache, KeyDirectory, RecipientKeys, _now
from sealmail.secureline.vks import fetch_vks
from sealmail.secureline.wkd import CACHE_METHOD, NO_WKD_DETAIL, WkdResult, fetch_wkd, split_address

log = structlog.get_logger("sealmail.keys")

# Bound on the in-process "domain has no WKD" memory (cleared of expired entries when full).
_DOMAIN_CACHE_MAX = 50_000

# The cache ``method`` under which a domain's "no WKD at all" answer is kept (address = the domain).
WKD_DOMAIN_METHOD = "wkd-domain"


class Discovery:
    """Finds recipients' OpenPGP certificates by WKD (and an optional VKS keyserver).

    Found certificates are stored in the key directory (source ``wkd``/``keyserver``)
    for the looked-up address only; answers — including "no key" — are cached per
    tenant, so an address without WKD costs one lookup an hour, not one per message.

    A domain where neither WKD host exists (``openpgpkey.<domain>`` and ``<domain>`` have
    no address records — a DNS fact that does not depend on the local part) is
    remembered per tenant and domain for the not-found TTL, in this process and in the
    database: every other address of the domain is then answered "no WKD key" without a
    lookup, so the common case costs one lookup per domain an hour, not one per address.
    """

    def __init__(
        self,
        keydir: KeyDirectory,
        client: SafeHttpClient,
        keyserver: str | None = None,
        *,
        ttl: DiscoveryTtl = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keydir = keydir
        self.client = client
        self.keyserver = keyserver
        self.ttl = ttl
        self.clock = clock
        # (tenant, ascii domain) -> epoch expiry of "this domain has no WKD host".
        self._no_wkd: dict[tuple[str, str], float] = {}
        # address -> its ascii domain (None: not an address), bounded as ``_no_wkd``.
        self._domains: dict[str, str | None] = {}
        # (tenant, ascii domain) -> the first lookup of a domain in flight; others wait for it.
        self._probing: dict[tuple[str, str], asyncio.Event] = {}
        # (tenant, ascii domain) -> epoch until which the domain is known to have a WKD host.
        self._hosted: dict[tuple[str, str], float] = {}

    def _domain(self, address: str) -> str | None:
        # Remembered: ``settled`` asks for every recipient of every delivery.
        try:
            return self._domains[address]
        except KeyError:
            pass
        try:
            domain: str | None = to_ascii_domain(split_address(address)[1])
        except ValueError:
            domain = None
        if len(self._domains) >= _DOMAIN_CACHE_MAX:
            self._domains.clear()
        self._domains[address] = domain
        return domain

    def _domain_without_wkd(self, tenant_id: str, domain: str | None, now: float) -> bool:
        if domain is None:
            return False
        expiry = self._no_wkd.get((tenant_id, domain))
        if expiry is None:
            return False
        if expiry <= now:
            self._no_wkd.pop((tenant_id, domain), None)
            return False
        return True

    def _remember_domain(self, tenant_id: str, domain: str, expires_at: float) -> None:
        if len(self._no_wkd) >= _DOMAIN_CACHE_MAX:
            now = self.clock()
            for key in [k for k, e in self._no_wkd.items() if e <= now]:
                del self._no_wkd[key]
            if len(self._no_wkd) >= _DOMAIN_CACHE_MAX:
                self._no_wkd.clear()
        self._no_wkd[(tenant_id, domain)] = expires_at

    @staticmethod
    def nothing_to_find(addresses: Sequence[str], known: dict[str, RecipientKeys]) -> bool:
        """Whether every address already has a usable OpenPGP key in ``known``, so that
        ``discover`` would look nothing up; no I/O (asked on the loop first)."""
        for address in addresses:
            facts = known.get(address.strip().lower())
            if facts is None or not any(k.usable for k in facts.pgp):
                return False
        return True

    def settled(self, tenant_id: str, addresses: Sequence[str], known: dict[str, RecipientKeys]) -> bool:
        """Whether ``discover`` would look nothing up and return 0, known without I/O: every
        address has a usable key, or (no keyserver) every address's domain is remembered to
        have no WKD host.  Asked on the loop first: the usual TLS delivery then needs no
        task and timer for a discovery that has nothing to do."""
        if self.nothing_to_find(addresses, known):
            return True
        if self.keyserver:
            return False
        clock = self.clock()
        return all(
            self._domain_without_wkd(tenant_id, self._domain(a.strip().lower()), clock) for a in addresses
        )

    async def discover(
        self, tenant_id: str, addresses: Sequence[str], known: dict[str, RecipientKeys] | None = None
    ) -> int:
        """Look up addresses that have no usable OpenPGP key yet; returns how many were found.

        ``known`` — the key directory's facts for ``addresses`` when the caller already
        read them (saves a read).
        """
        clock = self.clock()
        unique = list(dict.fromkeys(a.strip().lower() for a in addresses))
        if not self.keyserver:
            # Nothing to ask for an address whose domain has no WKD at all.
            unique = [a for a in unique if not self._domain_without_wkd(tenant_id, self._domain(a), clock)]
            if not unique:
                return 0
        if known is None or any(a not in known for a in unique):
            known = await asyncio.to_thread(self.keydir.facts, tenant_id, unique, _now())
        missing = [a for a in unique if not any(k.usable for k in known[a].pgp)]
        if not missing:
            return 0
        cache = DbDiscoveryCache(self.keydir.engine, tenant_id)
        domains = {d for d in (self._domain(a) for a in missing) if d is not None}
        keys = [(CACHE_METHOD, a) for a in missing] + [(WKD_DOMAIN_METHOD, d) for d in domains]
        await cache.prefetch(keys, now=clock)
        for domain in domains:
            entry = cache.peek(WKD_DOMAIN_METHOD, domain, now=clock)
            if entry is not None and entry.status is DiscoveryStatus.NOT_FOUND:
                self._remember_domain(tenant_id, domain, entry.expires_at)
        results = await asyncio.gather(*(self._one(tenant_id, a, cache) for a in missing))
        return sum(results)

    async def _wkd(self, tenant_id: str, address: str, cache: DbDiscoveryCache) -> WkdResult:
        domain = self._domain(address)
        if domain is None:
            raise ValueError("not an email address")
        key = (tenant_id, domain)
        now = self.clock()
        probe = self._probing.get(key)
        if probe is not None and cache.peek(CACHE_METHOD, address, now=now) is None:
            # The first lookup of this domain is under way: its answer may cover this address.
            await probe.wait()
            now = self.clock()
        if self._domain_without_wkd(tenant_id, domain, now):
            return WkdResult(DiscoveryStatus.NOT_FOUND, None, None, NO_WKD_DETAIL, cached=True)
        if probe is not None or self._hosted.get(key, 0.0) > now or key in self._probing:
            # The domain is known to have a WKD host (or is being probed): look up concurrently.
            return await fetch_wkd(address, self.client, cache=cache, ttl=self.ttl, clock=self.clock)
        probe = self._probing[key] = asyncio.Event()
        try:
            result = await fetch_wkd(address, self.client, cache=cache, ttl=self.ttl, clock=self.clock)
            if not result.domain_without_wkd and result.method is not None:
                # A host answered (key or not): no point making others wait for a while.
                if len(self._hosted) >= _DOMAIN_CACHE_MAX:
                    self._hosted.clear()
                self._hosted[key] = now + self.ttl.error
            if result.domain_without_wkd and not result.cached:
                entry = DiscoveryEntry.create(
                    DiscoveryStatus.NOT_FOUND, now=now, ttl=self.ttl, detail=result.detail
                )
                self._remember_domain(tenant_id, domain, entry.expires_at)
                try:
                    await cache.put(WKD_DOMAIN_METHOD, domain, entry)
                except Exception as exc:  # noqa: BLE001 — only the shared cache is lost
                    log.warning("discovery.domain_not_cached", error=type(exc).__name__)
            return result
        finally:
            self._probing.pop(key, None)
            probe.set()

    async def _one(self, tenant_id: str, address: str, cache: DbDiscoveryCache) -> int:
        try:
            result = await self._wkd(tenant_id, address, cache)
        except ValueError:
            return 0
        cert, source = (result.cert, "wkd") if result.found else (None, "")
        if cert is None and self.keyserver:
            vks = await fetch_vks(address, self.keyserver, self.client, cache=cache)
            cert, source = (vks.cert, "keyserver") if vks.cert else (None, "")
        if cert is None:
            return 0
        if result.cached and source == "wkd" and await asyncio.to_thread(self._stored, tenant_id, address):
            return 0  # already in the directory from an earlier lookup
        try:
            await asyncio.to_thread(
                self.keydir.upload, tenant_id, cert, "discovery", source=source, only_address=address
            )
        except ValidationFailed:
            log.info("discovery.unusable_cert", source=source)
            return 0
        return 1

    def _stored(self, tenant_id: str, address: str) -> bool:
        return bool(self.keydir.list(tenant_id, address=address, kind="pgp"))
