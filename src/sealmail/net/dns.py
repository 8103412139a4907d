"""DNS lookups for outbound delivery: MX, addresses, TXT and DNSSEC-aware TLSA.

Every lookup turns the resolver's exceptions into values at this edge: an MX lookup
answers with an :class:`MxResult` whose ``status`` says whether the failure is
permanent (``null_mx``, ``bad_domain``) or temporary (``dns_failure``), as the
delivery layer must treat them differently (RFC 5321 §5.1, RFC 7505 §3).

TLSA answers are only worth anything when they come from a DNSSEC-validating
resolver, which says so with the AD bit (RFC 7672 §2.2, RFC 6698 §4.1); the resolver
therefore sends every query with the DO bit and the AD bit set (RFC 6840 §5.7) and
reports ``authenticated`` from the response header.  The stub trusts its configured
resolver for that bit, so production must point at a local validating resolver.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import idna

from sealmail.net.dane import TlsaRecord

# Answers are kept for their TTL (RFC 1035 §3.2.1) but never longer than this, so a
# process that runs for days still notices a moved MX within the hour at worst.
_CACHE_MAX_SECONDS = 3600.0
# MX and address answers kept parsed (a full table is emptied).
_MX_PARSED_KEPT = 10_000
# RFC 2308 §5: negative answers are cached for the SOA's TTL (capped by its MINIMUM field),
# here also capped lower than positive answers; without an SOA they are not cached.
_NEGATIVE_MAX_SECONDS = 300.0
_CACHE_MAX_ENTRIES = 10_000
# Only the per-delivery lookups go through the cache.  TXT answers (MTA-STS ids, domain
# verification) are asked rarely and must reflect a change as soon as it is published.
_CACHED_TYPES = frozenset({"MX", "A", "AAAA", "TLSA"})

# RFC 6891 §6.2.5: 1232 bytes is the DNS Flag Day 2020 payload size that avoids
# IP fragmentation; larger answers fall back to TCP via the TC bit.
_EDNS_PAYLOAD = 1232


class DnsLookupError(Exception):
    """A lookup failed temporarily (timeout, SERVFAIL, no reachable nameserver)."""


class MxStatus(enum.StrEnum):
    OK = "ok"
    NULL_MX = "null_mx"  # RFC 7505: the domain accepts no mail (permanent)
    BAD_DOMAIN = "bad_domain"  # NXDOMAIN, no MX and no address, invalid IDN (permanent)
    DNS_FAILURE = "dns_failure"  # timeout or SERVFAIL (temporary)


@dataclass(frozen=True, slots=True)
class MxHost:
    """One mail exchanger, its name in A-label form without the trailing dot."""

    name: str
    preference: int


@dataclass(frozen=True, slots=True)
class MxResult:
    """Where mail for a domain goes, or why it cannot go anywhere.

    ``hosts`` is in delivery order (RFC 5321 §5.1: ascending preference, random
    among equals).  ``implicit`` marks the A/AAAA fallback, where the domain itself
    is the only host.  ``secure`` says the MX RRset was DNSSEC-validated, which
    RFC 7672 §2.2.1 requires before the TLSA records of the hosts may be used.
    """

    domain: str
    status: MxStatus
    hosts: tuple[MxHost, ...] = ()
    implicit: bool = False
    secure: bool = False
    detail: str = ""

    @property
    def permanent(self) -> bool:
        return self.status in (MxStatus.NULL_MX, MxStatus.BAD_DOMAIN)

    @property
    def temporary(self) -> bool:
        return self.status is MxStatus.DNS_FAILURE


class TlsaStatus(enum.StrEnum):
    FOUND = "found"
    NONE = "none"  # NXDOMAIN or no TLSA RRset
    FAILED = "failed"  # timeout or SERVFAIL: RFC 7672 §2.2 says defer, do not ignore


@dataclass(frozen=True, slots=True)
class TlsaResult:
    """The TLSA RRset of ``_port._tcp.host`` and whether a validating resolver vouched for it."""

    name: str
    status: TlsaStatus
    records: tuple[TlsaRecord, ...] = ()
    authenticated: bool = False

    @property
    def usable(self) -> bool:
        """RFC 7672 §2.2: only records from a validated (AD) answer may be used."""
        return self.authenticated and self.status is TlsaStatus.FOUND and bool(self.records)


def to_ascii_domain(domain: str) -> str:
    """Return the A-label form of ``domain`` (UTS #46 mapping), lowercase, no trailing dot.

    Raises ``ValueError`` for names that cannot be encoded.
    """
    name = domain.strip().rstrip(".")
    if not name:
        raise ValueError("empty domain")
    if name.isascii():
        # Already A-labels; IDNA would reject the underscore labels of service
        # names such as ``_mta-sts`` and ``_25._tcp`` (RFC 8552).
        return name.lower()
    try:
        return idna.encode(name, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise ValueError(f"invalid domain name: {exc}") from exc


_HOST_LABEL_RE = re.compile(r"[a-z0-9_][a-z0-9_-]{0,62}")
# WHATWG URL's "ends in a number": a last label of digits or 0x-hex reads as IPv4 to inet_aton.
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0x[0-9a-f]*")


def is_host_name(name: str) -> bool:
    """Whether ``name`` (A-label form, lowercase, no trailing dot) is a host name: letters,
    digits, hyphens (not leading) and underscores (Postfix lets them by too) in labels of 1-63,
    at most 253 in all, not ending in a numeric label that resolvers would read as an address."""
    labels = name.split(".")
    return (
        0 < len(name) <= 253
        and all(_HOST_LABEL_RE.fullmatch(label) for label in labels)
        and not _NUMERIC_LABEL_RE.fullmatch(labels[-1])
    )


def _is_ip_literal(host: str) -> bool:
    # An IPv4 literal starts with a digit and an IPv6 one has a colon: an MX host name
    # (every delivery asks) answers here, without ipaddress raising and formatting twice.
    if ":" not in host and not "0" <= host[:1] <= "9":
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Resolver:
    """Async resolver for delivery lookups.

    With ``nameservers`` (a list of ``(ip, port)``) it asks only those servers and
    ignores ``/etc/resolv.conf``; tests point it at a loopback DNS server this way.

    ``timeout`` bounds one query.  A query left unanswered is sent once more (UDP loses
    datagrams, and a busy server drops what overflows its socket), so a lookup gives up
    after about twice ``timeout`` -- as a stub resolver does (resolv.conf's ``attempts:2``).
    Concurrent lookups of one name and type in a process share one query: a worker that
    starts 50 deliveries to a domain at once asks for its MX once, not 50 times.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        timeout: float = 5.0,
    ) -> None:
        resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in nameservers]
        resolver.timeout = timeout
        # Two tries with the only (or each) nameserver: dnspython starts over after the
        # whole list timed out (after a 0.1 s back-off) for as long as the lifetime lasts.
        resolver.lifetime = 2 * timeout
        # RFC 6840 §5.7: the AD bit in a query asks for the AD bit in the answer;
        # DO (RFC 3225) asks for DNSSEC records so a validating resolver validates.
        resolver.use_edns(0, dns.flags.DO, _EDNS_PAYLOAD)
        resolver.flags = dns.flags.RD | dns.flags.AD
        self._resolver = resolver
        # (name, rdtype) -> (monotonic expiry, the whole answer or the NXDOMAIN/NoAnswer it
        # raised).  The answer object keeps its response header, so a cached answer says
        # whether it was DNSSEC-authenticated (AD bit) exactly as the fresh one did.
        # Failures (timeouts, SERVFAIL) are never cached: they must be retried.
        self._cache: dict[tuple[str, str], tuple[float, object]] = {}
        # domain -> (the cached MX answer, its AD bit, its records as text): parsed once per answer.
        self._mx_parsed: dict[str, tuple[object, bool, tuple[tuple[int, str], ...]]] = {}
        # (host, A | AAAA) -> (the cached answer, its addresses as text).
        self._parsed: dict[tuple[str, str], tuple[object, tuple[str, ...]]] = {}
        # (name, rdtype) -> the query in flight, which later askers of the same name await.
        self._in_flight: dict[tuple[str, str], asyncio.Task[dns.resolver.Answer]] = {}

    def _cached(self, name: str, rdtype: str) -> object | None:
        hit = self._cache.get((name, rdtype))
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._cache.pop((name, rdtype), None)
            return None
        return hit[1]

    def _remember(self, name: str, rdtype: str, ttl: float, value: object) -> None:
        if ttl <= 0:
            return
        if len(self._cache) >= _CACHE_MAX_ENTRIES:
            now = time.monotonic()
            for key in [k for k, (expiry, _) in self._cache.items() if expiry <= now]:
                del self._cache[key]
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
        self._cache[(name, rdtype)] = (time.monotonic() + ttl, value)

    async def _resolve(
        self, name: str, rdtype: str, *, raise_on_no_answer: bool = True
    ) -> dns.resolver.Answer:
        """``resolve`` through the TTL cache; NXDOMAIN/NoAnswer are cached per RFC 2308."""
        cached = self._cached(name, rdtype) if rdtype in _CACHED_TYPES else None
        if cached is None:
            answer = await self._shared(name, rdtype)
        elif isinstance(cached, dns.resolver.Answer):
            answer = cached
        else:
            assert isinstance(cached, dns.resolver.NXDOMAIN)
            raise cached.with_traceback(None)
        if answer.rrset is None and raise_on_no_answer:
            raise dns.resolver.NoAnswer(response=answer.response)  # type: ignore[no-untyped-call]  # dnspython leaves it unannotated
        return answer

    async def _shared(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """The answer of the query in flight for ``(name, rdtype)``, or of a new one.

        The query is a task of its own and each asker awaits it through ``shield``: one
        asker cancelled (its delivery timed out) does not cancel the others' lookup.
        """
        loop = asyncio.get_running_loop()
        key = (name, rdtype)
        task = self._in_flight.get(key)
        # A task belongs to its loop: a resolver used from another loop (a thread's
        # ``asyncio.run``) asks on its own.
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._fetch(name, rdtype))
            self._in_flight[key] = task
            task.add_done_callback(partial(self._landed, key))
        return await asyncio.shield(task)

    def _landed(self, key: tuple[str, str], task: asyncio.Task[dns.resolver.Answer]) -> None:
        # The next lookup of the name asks again (or finds the cache): a failure is never shared
        # beyond the askers that were waiting for it.
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # retrieved: asyncio logs a failure nobody awaited any more

    async def _fetch(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """One lookup at the nameservers; the per-delivery types are remembered for their TTL."""
        cache = rdtype in _CACHED_TYPES
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            if cache:
                responses = exc.responses()  # type: ignore[no-untyped-call]  # dnspython leaves it unannotated
                ttl = min((_negative_ttl(r) for r in responses.values()), default=0.0)
                self._remember(name, rdtype, ttl, exc)
            raise
        if not cache:
            return answer
        if answer.rrset is None:
            self._remember(name, rdtype, _negative_ttl(answer.response), answer)
        else:
            # ``expiration`` is the smallest TTL along the whole CNAME chain.
            self._remember(name, rdtype, min(answer.expiration - time.time(), _CACHE_MAX_SECONDS), answer)
        return answer

    async def _query(self, name: str, rdtype: str, *, raise_on_no_answer: bool = True) -> dns.resolver.Answer:
        """One query; NXDOMAIN/NoAnswer propagate, temporary trouble is DnsLookupError."""
        try:
            return await self._resolve(name, rdtype, raise_on_no_answer=raise_on_no_answer)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            raise
        except (
            dns.resolver.NoNameservers,
            dns.resolver.LifetimeTimeout,
            dns.exception.Timeout,
        ) as exc:
            raise DnsLookupError(f"{rdtype} lookup for {name} failed: {type(exc).__name__}") from exc
        except dns.exception.DNSException as exc:
            raise DnsLookupError(f"{rdtype} lookup for {name} failed: {type(exc).__name__}") from exc

    async def resolve_mx(self, domain: str) -> MxResult:
        """The mail exchangers for ``domain`` in delivery order (RFC 5321 §5.1)."""
        try:
            ascii_domain = to_ascii_domain(domain)
        except ValueError as exc:
            return MxResult(domain=domain, status=MxStatus.BAD_DOMAIN, detail=str(exc))
        try:
            answer = await self._query(ascii_domain, "MX")
        except dns.resolver.NXDOMAIN:
            return MxResult(ascii_domain, MxStatus.BAD_DOMAIN, detail=f"{ascii_domain} does not exist")
        except dns.resolver.NoAnswer:
            return await self._implicit_mx(ascii_domain)
        except DnsLookupError as exc:
            return MxResult(ascii_domain, MxStatus.DNS_FAILURE, detail=str(exc))

        parsed = self._mx_parsed.get(ascii_domain)
        if parsed is not None and parsed[0] is answer:
            # The same cached answer as last time: its records are already text (the worker
            # asks once per delivery, and rendering the names was most of this call).
            secure, records = parsed[1], list(parsed[2])
        else:
            secure = bool(answer.response.flags & dns.flags.AD)
            records = [
                (int(rr.preference), rr.exchange.to_text(omit_final_dot=True).lower()) for rr in answer
            ]
            if len(self._mx_parsed) >= _MX_PARSED_KEPT:
                self._mx_parsed.clear()
            self._mx_parsed[ascii_domain] = (answer, secure, tuple(records))
        # RFC 7505 §3: a null MX is a single record with preference 0 and target ".";
        # the domain declares it accepts no mail, so the message bounces at once.
        if len(records) == 1 and records[0][1] in ("", "."):
            return MxResult(
                ascii_domain,
                MxStatus.NULL_MX,
                secure=secure,
                detail=f"{ascii_domain} publishes a null MX (accepts no mail)",
            )
        # RFC 7505 §4.3: a null MX mixed with real ones is a misconfiguration; the
        # real records still say where to deliver, so the "." target is dropped.
        records = [(pref, host) for pref, host in records if host not in ("", ".")]
        if not records:
            return MxResult(ascii_domain, MxStatus.NULL_MX, secure=secure, detail="null MX")
        # DNS carries any bytes in a name, but an MX target is a host name (RFC 5321 §2.3.5):
        # one that is not (escaped bytes TLS cannot put in SNI, "10.0.0.5." posing as an
        # address) is skipped, as Postfix does; a domain with no other is a fault to retry.
        records = [(pref, host) for pref, host in records if is_host_name(host)]
        if not records:
            detail = f"no MX target of {ascii_domain} is a valid host name"
            return MxResult(ascii_domain, MxStatus.DNS_FAILURE, secure=secure, detail=detail)
        return MxResult(
            ascii_domain,
            MxStatus.OK,
            hosts=tuple(MxHost(host, pref) for pref, host in _order_mx(records)),
            secure=secure,
        )

    async def _implicit_mx(self, domain: str) -> MxResult:
        # RFC 5321 §5.1: with no MX records the domain itself is the implicit MX,
        # provided it has an address record.
        try:
            addresses, secure = await self._addresses(domain)
        except DnsLookupError as exc:
            return MxResult(domain, MxStatus.DNS_FAILURE, detail=str(exc))
        if not addresses:
            return MxResult(domain, MxStatus.BAD_DOMAIN, detail=f"{domain} has no MX or address records")
        # RFC 7672 §2.2.2: the implicit MX is a non-MX destination, whose TLSA records count
        # when its address records are validated; without this a signed domain with no MX
        # lost DANE, and a PHI message to it took any certificate.
        return MxResult(domain, MxStatus.OK, hosts=(MxHost(domain, 0),), implicit=True, secure=secure)

    async def resolve_addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host``; empty when the name has none.

        Raises :class:`DnsLookupError` when neither family could be looked up.
        """
        return (await self._addresses(host))[0]

    async def _addresses(self, host: str) -> tuple[list[str], bool]:
        """``resolve_addresses``, and whether an answer with addresses was DNSSEC-validated."""
        if _is_ip_literal(host):
            return [host], False
        name = to_ascii_domain(host)
        addresses: list[str] = []
        secure = False
        failures: list[DnsLookupError] = []
        for rdtype in ("A", "AAAA"):
            try:
                # "No records of this type" (most MX hosts have no AAAA) is an answer, not an
                # exception: building a NoAnswer formats the whole question, on every delivery.
                answer = await self._query(name, rdtype, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                continue
            except DnsLookupError as exc:
                failures.append(exc)
                continue
            if answer.rrset is not None:
                addresses.extend(self._address_texts(name, rdtype, answer))
                secure = secure or bool(answer.response.flags & dns.flags.AD)
        if not addresses and len(failures) == 2:
            raise failures[0]
        return addresses, secure

    def _address_texts(self, name: str, rdtype: str, answer: dns.resolver.Answer) -> tuple[str, ...]:
        """The answer's addresses as text, rendered once per cached answer (once per delivery before)."""
        kept = self._parsed.get((name, rdtype))
        if kept is not None and kept[0] is answer:
            return kept[1]
        texts = tuple(rr.to_text() for rr in answer)
        if len(self._parsed) >= _MX_PARSED_KEPT:
            self._parsed.clear()
        self._parsed[(name, rdtype)] = (answer, texts)
        return texts

    async def txt(self, name: str) -> list[str]:
        """The TXT records at ``name``, each record's strings joined (RFC 7208 §3.3 style)."""
        try:
            answer = await self._query(to_ascii_domain(name), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        return [b"".join(rr.strings).decode("utf-8", "replace") for rr in answer]

    async def tlsa(self, mx_host: str, port: int = 25) -> TlsaResult:
        """The TLSA RRset for ``mx_host`` (RFC 6698 §3, RFC 7672 §2.2)."""
        name = f"_{port}._tcp.{to_ascii_domain(mx_host)}"
        try:
            answer = await self._resolve(name, "TLSA", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            # The denial of existence is itself validated when the AD bit is set.
            responses = exc.responses()  # type: ignore[no-untyped-call]  # dnspython leaves it unannotated
            authenticated = any(bool(r.flags & dns.flags.AD) for r in responses.values())
            return TlsaResult(name, TlsaStatus.NONE, authenticated=authenticated)
        except dns.exception.DNSException:
            return TlsaResult(name, TlsaStatus.FAILED)
        authenticated = bool(answer.response.flags & dns.flags.AD)
        if answer.rrset is None:
            return TlsaResult(name, TlsaStatus.NONE, authenticated=authenticated)
        records = tuple(
            TlsaRecord(int(rr.usage), int(rr.selector), int(rr.mtype), bytes(rr.cert)) for rr in answer
        )
        return TlsaResult(name, TlsaStatus.FOUND, records, authenticated)


def _negative_ttl(response: dns.message.Message) -> float:
    """RFC 2308 §5: the TTL of a negative answer is min(SOA TTL, SOA MINIMUM); 0 without an SOA."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            soa = rrset[0]
            return float(min(rrset.ttl, int(soa.minimum), _NEGATIVE_MAX_SECONDS))
    return 0.0


def _order_mx(records: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Ascending preference, shuffled among equal preferences (RFC 5321 §5.1)."""
    if len({pref for pref, _ in records}) == len(records):
        return sorted(records)  # no ties: nothing to shuffle
    shuffled = list(records)
    random.shuffle(shuffled)
    return sorted(shuffled, key=lambda item: item[0])
