"""Route planning: which hosts to try for a domain, and the TLS level each must meet.

MX records (RFC 5321 §5.1), MTA-STS (RFC 8461) and DANE (RFC 7672) decide the hops; a
smart host or a fixed route (the capture sink, tests) replaces them but still enforces
the requested level.  Every expected trouble is a ``HopError`` the transport turns into
attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sealmail.delivery.mta_sts import MtaStsFetcher
from sealmail.domain.outcomes import Attempt, AttemptStatus, TlsInfo
from sealmail.domain.tls_policy import (
    DestinationPolicy,
    TlsPolicy,
    VerifiedBy,
    effective_policy,
    mx_matches_sts,
)
from sealmail.net.dane import TlsaRecord, usable_records
from sealmail.net.dns import MxHost, MxStatus, Resolver, TlsaStatus, to_ascii_domain


@dataclass(frozen=True, slots=True)
class SmartHost:
    """Relay everything through one host, authenticating after TLS (RFC 4954 §4)."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    tls_level: TlsPolicy = TlsPolicy.REQUIRE_VERIFIED


@dataclass(frozen=True, slots=True)
class Where:
    """Where an attempt got to: the host, its address, and the TLS it negotiated."""

    mx_host: str | None = None
    mx_ip: str | None = None
    tls: TlsInfo = field(default_factory=TlsInfo)


@dataclass(frozen=True, slots=True)
class Hop:
    """One host to try, with the TLS level it must meet."""

    name: str
    port: int
    level: TlsPolicy
    verified_by: VerifiedBy = VerifiedBy.PKIX
    tlsa: tuple[TlsaRecord, ...] = ()
    auth: SmartHost | None = None
    blocked: str | None = None  # a policy reason not to connect at all
    # The block is permanent (REQUIRETLS to an unauthenticated MX, RFC 8689 §4.2.1).
    blocked_permanently: bool = False


class HopError(Exception):
    """This host could not take the message; try the next one."""

    def __init__(
        self,
        reason: str,
        detail: str,
        where: Where,
        status: AttemptStatus = AttemptStatus.DEFERRED,
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.where, self.status = reason, detail, where, status

    def attempt(self, recipient: str) -> Attempt:
        return Attempt(
            recipient,
            self.status,
            self.reason,
            self.detail,
            mx_host=self.where.mx_host,
            mx_ip=self.where.mx_ip,
            tls=self.where.tls,
            destination_failure=self.status is AttemptStatus.DEFERRED,
        )


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How routes are planned (built by the composition root from settings)."""

    port: int = 25  # the MX port
    dane: bool = False
    smarthost: SmartHost | None = None
    # A recipient domain (A-label) to ``(host, port)``; ``relay_all_to`` sends every domain
    # to one ``(host, port)`` (the capture sink).  Both skip MX, MTA-STS and DANE.
    routes: tuple[tuple[str, tuple[str, int]], ...] = ()
    relay_all_to: tuple[str, int] | None = None


# MX hosts planned per delivery, in preference order.  Planning a host costs lookups (TLSA
# under DANE, then A and AAAA when it is tried) before any connection: a domain publishing
# thousands of MX records must not turn one delivery into thousands of queries.  More than
# the transport's address budget (MAX_ADDRESSES_PER_DELIVERY) so hosts without addresses
# do not use it up.
MAX_MX_HOSTS = 10


class RoutePlanner:
    """The hops for one domain under one requested TLS level."""

    def __init__(self, options: RouteOptions, resolver: Resolver, mta_sts: MtaStsFetcher | None) -> None:
        self._options = options
        self._resolver = resolver
        self._sts = mta_sts
        self._routes = dict(options.routes)

    async def plan(
        self, domain: str, policy: TlsPolicy, *, requiretls: bool = False, relaxed: bool = False
    ) -> list[Hop]:
        """The hops to try, in order.

        ``requiretls`` (RFC 8689 §4.2.1): verified TLS at every hop, and an MX the client
        could authenticate (DNSSEC-signed MX RRset, or listed by an MTA-STS enforce policy);
        a smart host or fixed route is the operator's own hop, verified against its name.
        ``relaxed`` (RFC 8689 §5, "TLS-Required: No" the caller decided to honour): the
        destination's MTA-STS and DANE are ignored and ``policy`` alone applies.
        """
        if requiretls:
            policy = policy.at_least(TlsPolicy.REQUIRE_VERIFIED)
        relay = self._options.smarthost
        if relay is not None:
            level = policy.at_least(relay.tls_level)
            if relay.username is not None:
                # RFC 4954 §4: credentials never cross an unencrypted connection.
                level = level.at_least(TlsPolicy.REQUIRE)
            return [Hop(relay.host, relay.port, level, auth=relay)]
        try:
            ascii_domain = to_ascii_domain(domain)
        except ValueError as exc:
            raise HopError("bad_domain", str(exc), Where(), AttemptStatus.FAILED) from exc
        fixed = self._routes.get(ascii_domain) or self._options.relay_all_to
        if fixed is not None:
            return [Hop(fixed[0], fixed[1], policy)]

        mx = await self._resolver.resolve_mx(ascii_domain)
        if mx.status is not MxStatus.OK:
            status = AttemptStatus.FAILED if mx.permanent else AttemptStatus.DEFERRED
            raise HopError(mx.status.value, mx.detail, Where(), status)
        if relaxed and not requiretls:
            return [Hop(host.name, self._options.port, policy) for host in mx.hosts[:MAX_MX_HOSTS]]
        sts = DestinationPolicy()
        if self._sts is not None:
            sts = await self._sts.destination_policy(ascii_domain)
        hosts, sts = await self._sts_hosts(ascii_domain, mx.hosts, sts)
        hosts = hosts[:MAX_MX_HOSTS]
        hops = [await self._hop_for(host.name, policy, sts, mx_secure=mx.secure) for host in hosts]
        if requiretls and not (mx.secure or sts.sts_mode == "enforce"):
            # RFC 8689 §4.2.1 (1): without DNSSEC or MTA-STS the MX name itself could be
            # forged, and a certificate verified against a forged name proves nothing.
            why = (
                f"REQUIRETLS: the MX of {ascii_domain} is neither DNSSEC-validated nor "
                "authorised by an MTA-STS enforce policy"
            )
            return [replace(h, blocked=why, blocked_permanently=True) for h in hops]
        return hops

    async def _sts_hosts(
        self, ascii_domain: str, hosts: tuple[MxHost, ...], sts: DestinationPolicy
    ) -> tuple[tuple[MxHost, ...], DestinationPolicy]:
        """The MX hosts MTA-STS lets us use, and the policy that said so."""
        if sts.sts_mode != "enforce":
            return hosts, sts
        # RFC 8461 §4.1: under enforce, never connect to an MX outside the policy.
        allowed = tuple(h for h in hosts if mx_matches_sts(h.name, sts.sts_mx_patterns))
        if not allowed and self._sts is not None:
            # RFC 8461 §5.1: look for an updated policy before deferring on a mismatch.
            sts = await self._sts.destination_policy(ascii_domain, refresh=True)
            matching = (h for h in hosts if mx_matches_sts(h.name, sts.sts_mx_patterns))
            allowed = tuple(matching) if sts.sts_mode == "enforce" else hosts
        if not allowed:
            raise HopError("tls_required", f"no MX of {ascii_domain} matches its MTA-STS policy", Where())
        return allowed, sts

    async def _hop_for(
        self, name: str, requested: TlsPolicy, sts: DestinationPolicy, *, mx_secure: bool
    ) -> Hop:
        destination, blocked = sts, None
        tlsa: tuple[TlsaRecord, ...] = ()
        floor = TlsPolicy.OPPORTUNISTIC
        port = self._options.port
        # RFC 7672 §2.2.1: TLSA records count only behind a DNSSEC-validated MX RRset.
        if (self._options.dane or requested is TlsPolicy.DANE) and mx_secure:
            result = await self._resolver.tlsa(name, port)
            if result.status is TlsaStatus.FAILED:
                # RFC 7672 §2.2: a failed TLSA lookup for a secure MX defers that MX.
                blocked = f"TLSA lookup for {name} failed"
            elif result.usable:
                records = usable_records(result.records)
                if records:
                    destination, tlsa = replace(sts, dane_usable=True), records
                else:
                    # RFC 7672 §2.2: only unusable records still mean mandatory TLS.
                    floor = TlsPolicy.REQUIRE
        level = effective_policy(requested, destination).at_least(floor)
        if level is TlsPolicy.DANE and not tlsa and blocked is None:
            blocked = f"no DNSSEC-validated TLSA records for {name}"
        verified_by = VerifiedBy.PKIX
        if level is TlsPolicy.DANE:
            verified_by = VerifiedBy.DANE
        elif sts.sts_mode == "enforce" and requested.rank < TlsPolicy.REQUIRE_VERIFIED.rank:
            verified_by = VerifiedBy.MTA_STS
        return Hop(name, port, level, verified_by, tlsa, blocked=blocked)
