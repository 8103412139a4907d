"""MTA-STS (RFC 8461): parse, fetch and cache a destination's published TLS policy.

``parse_policy`` is pure.  :class:`MtaStsFetcher` does the I/O: the ``_mta-sts`` TXT
record says a policy exists and names its version (``id``); the policy itself is
fetched over HTTPS with a verified certificate, no redirects, a content-type check
and a size cap, then cached for ``max_age`` seconds behind a :class:`PolicyCache`
port so a database-backed cache can replace the in-memory one.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.tls_policy import DestinationPolicy, VerifiedBy
from sealmail.net.dns import DnsLookupError, Resolver, to_ascii_domain
from sealmail.net.http_client import FetchError, SafeHttpClient

# RFC 8461 §3.2: max_age is at most 31557600 seconds (about one year).
MAX_AGE_LIMIT = 31_557_600
# RFC 8461 §3.3: senders may cap the policy body; 64 KiB is the common choice.
MAX_POLICY_BYTES = 64 * 1024
WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"
# A cached policy is refreshed once less than this share of its max_age remains, so an
# active destination never runs on an expired policy (and never falls back to none).
REFRESH_FRACTION = 0.25
# RFC 8461 §3.3: after a failed fetch, wait at least five minutes before the next one.
FETCH_BACKOFF_SECONDS = 300.0

_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
# RFC 8461 §3.2: an mx pattern is a domain name, optionally with a leading "*."; a
# single-label name (an intranet MX, or a TLD's own MX) is a domain name too.
_MX_PATTERN_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
# The fields whose repetition makes the policy ambiguous, hence invalid.
_SINGLE_FIELDS = frozenset({"version", "mode", "max_age"})


class StsMode(enum.StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"  # report only: must not change delivery (RFC 8461 §5)
    NONE = "none"


class StsPolicyError(ValueError):
    """The policy text is malformed (RFC 8461 §3.2)."""


class StsFetchError(Exception):
    """The policy could not be fetched; the caller falls back to the cache or to no policy."""


@dataclass(frozen=True, slots=True)
class StsPolicy:
    mode: StsMode
    mx: tuple[str, ...]
    max_age: int

    def to_destination(self) -> DestinationPolicy:
        """The part of the policy the delivery decision uses.

        Only ``enforce`` contributes patterns; ``testing`` is reported but never
        raises the TLS level (RFC 8461 §5).
        """
        patterns = self.mx if self.mode is StsMode.ENFORCE else ()
        return DestinationPolicy(sts_mode=self.mode.value, sts_mx_patterns=patterns)


def parse_policy(text: str) -> StsPolicy:
    """Parse a policy body (RFC 8461 §3.2); raise :class:`StsPolicyError` when malformed."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    # RFC 8461 §3.2: lines end in CRLF, but LF alone is accepted in practice.
    for raw_line in text.replace("\r\n", "\n").split("\n"):
        line = raw_line.strip(" \t")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise StsPolicyError(f"policy line without a colon: {line[:40]!r}")
        # RFC 8461 §3.2's ABNF spells the field names in lower case and they are matched
        # as written: "Version:" or "MODE:" is an unknown field, ignored like any other.
        key = key.strip(" \t")
        value = value.strip(" \t")
        if key == "mx":
            pattern = value.lower().rstrip(".")
            if not _MX_PATTERN_RE.match(pattern):
                raise StsPolicyError(f"invalid mx pattern {value[:80]!r}")
            mx.append(pattern)
        elif key in fields and key in _SINGLE_FIELDS:
            # Two modes or two max_ages cannot both hold: the policy is invalid rather
            # than read as whichever came first.
            raise StsPolicyError(f"field {key!r} appears more than once")
        else:
            fields[key] = value

    if fields.get("version") != "STSv1":
        raise StsPolicyError("version must be STSv1")
    try:
        mode = StsMode(fields.get("mode", ""))
    except ValueError as exc:
        raise StsPolicyError("mode must be enforce, testing or none") from exc
    max_age_text = fields.get("max_age", "")
    if not re.fullmatch(r"[0-9]{1,10}", max_age_text):
        raise StsPolicyError("max_age must be a non-negative integer")
    max_age = int(max_age_text)
    if max_age > MAX_AGE_LIMIT:
        raise StsPolicyError(f"max_age exceeds {MAX_AGE_LIMIT}")
    if mode is not StsMode.NONE and not mx:
        raise StsPolicyError("enforce and testing policies need at least one mx")
    return StsPolicy(mode=mode, mx=tuple(mx), max_age=max_age)


def parse_txt_id(records: list[str]) -> str | None:
    """The policy ``id`` from ``_mta-sts`` TXT records, or None when there is no valid one.

    RFC 8461 §3.1: records not starting with ``v=STSv1`` are ignored; more than one
    valid record means no policy.
    """
    ids: list[str] = []
    for record in records:
        parts = [part.strip() for part in record.split(";")]
        if not parts or parts[0] != "v=STSv1":
            continue
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key.strip() == "id" and _ID_RE.match(value.strip()):
                ids.append(value.strip())
                break
        else:
            ids.append("")  # a v=STSv1 record without a valid id still counts as "a record"
    if len(ids) != 1 or not ids[0]:
        return None
    return ids[0]


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    policy_id: str
    policy: StsPolicy
    expires_at: float  # epoch seconds


class PolicyCache(Protocol):
    """Where fetched policies live between deliveries (port; see InMemoryPolicyCache)."""

    async def get(self, domain: str) -> CachedPolicy | None: ...

    async def put(self, domain: str, entry: CachedPolicy) -> None: ...


class InMemoryPolicyCache:
    """A process-local :class:`PolicyCache`."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedPolicy] = {}

    async def get(self, domain: str) -> CachedPolicy | None:
        return self._entries.get(domain)

    async def put(self, domain: str, entry: CachedPolicy) -> None:
        self._entries[domain] = entry


class MtaStsFetcher:
    """Discover, fetch and cache MTA-STS policies.

    ``host_overrides`` maps a policy host (``mta-sts.example.org``) to ``(ip, port)``
    so tests can serve policies from loopback; the TLS name check still uses the
    policy host.  Private, loopback and link-local addresses are refused unless
    ``allow_loopback`` is set, so a hostile DNS answer cannot point the fetch at
    internal services.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        cache: PolicyCache | None = None,
        ca_file: str | None = None,
        host_overrides: Mapping[str, tuple[str, int]] | None = None,
        allow_loopback: bool = False,
        timeout: float = 4.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._resolver = resolver
        self._cache: PolicyCache = cache if cache is not None else InMemoryPolicyCache()
        # The one SSRF-safe client: vetted addresses only, pinned connections, certificate
        # checked against the policy host (RFC 8461 §3.3), no redirects, size cap.
        self._client = SafeHttpClient(
            resolver,
            allow_loopback=allow_loopback,
            timeout=timeout,
            max_bytes=MAX_POLICY_BYTES,
            ca_file=ca_file,
            host_overrides=host_overrides,
        )
        self._clock = clock
        # domain -> epoch seconds before which no refresh is fetched (rate limit)
        self._next_fetch: dict[str, float] = {}

    async def destination_policy(self, domain: str, *, refresh: bool = False) -> DestinationPolicy:
        """The destination-policy facts for ``domain`` (empty when it has no MTA-STS).

        ``refresh``: fetch the policy again even when the cached one is current — the
        transport asks before deferring a message because no MX matches the policy
        (RFC 8461 §5.1: check for an updated policy before failing a delivery).
        """
        policy = await self.get_policy(domain, refresh=refresh)
        return policy.to_destination() if policy is not None else DestinationPolicy()

    def _due(self, domain: str, cached: CachedPolicy, now: float, refresh: bool) -> bool:
        """Whether to fetch a policy whose id has not changed (a refresh, rate-limited)."""
        if now < self._next_fetch.get(domain, 0.0):
            return False
        remaining = cached.expires_at - now
        return refresh or remaining < cached.policy.max_age * REFRESH_FRACTION

    async def refreshed(self, domain: str) -> bool:
        """Fetch ``domain``'s policy again (rate-limited); True when what is in force changed."""
        try:
            cached = await self._cache.get(to_ascii_domain(domain))
        except ValueError:
            return False
        before = cached.policy if cached is not None else None
        return await self.get_policy(domain, refresh=True) != before

    async def get_policy(self, domain: str, *, refresh: bool = False) -> StsPolicy | None:
        """The policy in force for ``domain`` following RFC 8461 §5.1, or None."""
        try:
            domain = to_ascii_domain(domain)
        except ValueError:
            return None
        now = self._clock()
        cached = await self._cache.get(domain)
        if cached is not None and cached.expires_at <= now:
            cached = None
        try:
            policy_id = parse_txt_id(await self._resolver.txt(f"_mta-sts.{domain}"))
        except DnsLookupError:
            policy_id = None
        if policy_id is None:
            # RFC 8461 §5.1: a missing TXT record does not cancel a cached policy
            # before its max_age runs out (that would let an attacker strip it).
            return cached.policy if cached is not None else None
        current = cached is not None and cached.policy_id == policy_id
        if cached is not None and current and not self._due(domain, cached, now, refresh):
            return cached.policy
        try:
            policy = await self.fetch_policy(domain)
        except (StsFetchError, StsPolicyError):
            # RFC 8461 §5.1: without a fetchable policy, use a still-valid cached
            # one, or deliver as though the domain had no MTA-STS.
            self._next_fetch[domain] = now + FETCH_BACKOFF_SECONDS
            return cached.policy if cached is not None else None
        self._next_fetch.pop(domain, None)
        # A successful fetch restarts max_age (RFC 8461 §3.2: the policy is cached for
        # max_age seconds from when it was fetched).
        await self._cache.put(domain, CachedPolicy(policy_id, policy, now + policy.max_age))
        return policy

    async def fetch_policy(self, domain: str) -> StsPolicy:
        """Fetch and parse ``https://mta-sts.<domain>/.well-known/mta-sts.txt``."""
        url = f"https://mta-sts.{to_ascii_domain(domain)}{WELL_KNOWN_PATH}"
        try:
            response = await self._client.get(url, accept="text/plain")
        except FetchError as exc:
            why = {
                "too_large": "policy exceeds the 64 KiB size cap",
                "blocked_address": "policy host has no acceptable public address",
            }.get(str(exc.reason), f"policy fetch failed: {exc.reason}")
            raise StsFetchError(why) from exc
        # RFC 8461 §3.3: a redirect is not followed, it is a failed fetch.
        if response.status != 200:
            raise StsFetchError(f"policy host answered HTTP {response.status}")
        if response.media_type != "text/plain":
            raise StsFetchError("policy is not served as text/plain")
        try:
            text = response.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StsPolicyError("policy is not valid UTF-8") from exc
        return parse_policy(text)


def sts_refetch_wanted(attempts: Sequence[Attempt]) -> bool:
    """Whether a delivery failed on TLS at a hop an ``enforce`` policy made verify (RFC 8461
    §5.1: check for an updated policy before deferring)."""
    return bool(attempts) and all(
        a.status is AttemptStatus.DEFERRED
        and a.reason == "tls_required"
        and a.tls.verified_by is VerifiedBy.MTA_STS
        and not a.tls.verified
        for a in attempts
    )
