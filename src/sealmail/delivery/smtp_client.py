"""Outbound SMTP: deliver one message to the recipients of one domain, enforcing TLS policy.

``OutboundTransport.deliver`` returns one :class:`Attempt` per recipient and raises
only when the caller is wrong; every expected trouble (DNS, refused connections,
TLS policy unmet, 4xx/5xx replies) is a value.  Its parts:

* ``routes.py`` — which hosts to try and the TLS level each must meet (MX, MTA-STS,
  DANE, smart host);
* ``pool.py`` — connections, STARTTLS, and reuse with RSET;
* ``transaction.py`` — MAIL, RCPT and DATA on one connection.

TLS follows the effective level (``domain.tls_policy.effective_policy``).  Nothing here
logs addresses or content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sealmail.delivery.mta_sts import MtaStsFetcher, sts_refetch_wanted
from sealmail.delivery.pool import ConnectionPool, PoolOptions
from sealmail.delivery.routes import Hop, HopError, RouteOptions, RoutePlanner, SmartHost, Where
from sealmail.delivery.transaction import Session, abort, transact
from sealmail.domain.outcomes import Attempt, AttemptStatus, sent_digest, with_sent
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.net.dns import DnsLookupError, Resolver, to_ascii_domain

__all__ = ["REQUIRETLS_UNSUPPORTED", "OutboundTransport", "SmartHost"]

# The attempt reason when no hop could carry a REQUIRETLS message (RFC 8689).
REQUIRETLS_UNSUPPORTED = "requiretls_unsupported"

_BAD_ADDRESS_CHARS = re.compile(r"[\x00-\x20<>\x7f]")
# Addresses tried per delivery, over all MX hosts (Postfix's smtp_mx_address_limit, same
# default): a domain that publishes a hundred MX records, or an MX with a hundred A records,
# all black holes, must not hold a delivery slot for a hundred connect timeouts.
MAX_ADDRESSES_PER_DELIVERY = 5


class OutboundTransport:
    """Delivers messages to recipient MXes (or a smart host) under a TLS policy.

    ``route_override`` maps a recipient domain to ``(host, port)`` and ``relay_all_to``
    sends every domain to one ``(host, port)`` (the capture sink); both skip MX,
    MTA-STS and DANE but still enforce the requested TLS level.  ``port`` is the MX
    port (25 in production).  A transport belongs to one event loop.
    """

    def __init__(
        self,
        *,
        ehlo_hostname: str,
        resolver: Resolver,
        mta_sts: MtaStsFetcher | None = None,
        dane: bool = False,
        ca_file: str | None = None,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        max_connections_per_destination: int = 5,
        smarthost: SmartHost | None = None,
        route_override: dict[str, tuple[str, int]] | None = None,
        relay_all_to: tuple[str, int] | None = None,
        port: int = 25,
        idle_timeout: float = 30.0,
        max_messages_per_connection: int = 100,
    ) -> None:
        routes = tuple((to_ascii_domain(k), v) for k, v in (route_override or {}).items())
        self._resolver = resolver
        self._sts = mta_sts
        self._planner = RoutePlanner(
            RouteOptions(port, dane, smarthost, routes, relay_all_to), resolver, mta_sts
        )
        self._pool = ConnectionPool(
            PoolOptions(
                ehlo_hostname,
                ca_file,
                connect_timeout,
                command_timeout,
                max_connections_per_destination,
                idle_timeout,
                max_messages_per_connection,
            )
        )
        self._command_timeout = command_timeout

    async def deliver(
        self,
        domain: str,
        mail_from: str,
        recipients: list[str],
        message: bytes,
        policy: TlsPolicy,
        *,
        requiretls: bool = False,
        relaxed: bool = False,
    ) -> list[Attempt]:
        """Try to deliver ``message`` to ``recipients`` (all at ``domain``) once.

        ``requiretls`` (RFC 8689 §4): only to a hop that offers REQUIRETLS over verified
        TLS, with the MAIL parameter passed on; otherwise a permanent 5.7.30 failure.
        ``relaxed`` (RFC 8689 §5): the destination's MTA-STS and DANE are not applied.
        """
        # RFC 8689 §4.3: a bounce (null reverse-path) of REQUIRETLS mail asks for REQUIRETLS
        # where the next hop offers it, but is not discarded where it does not.
        run = _Run(
            policy, requiretls and bool(mail_from), relaxed and not requiretls, requiretls and not mail_from
        )
        if run.prefer_requiretls:
            # Verified TLS first, so REQUIRETLS can be passed on honestly; where that fails,
            # the bounce goes as any bounce would rather than being lost.
            strict = replace(run, policy=policy.at_least(TlsPolicy.REQUIRE_VERIFIED))
            attempts = await self._deliver_once(domain, mail_from, recipients, message, strict)
            if not any(a.reason == "tls_required" for a in attempts):
                return attempts
            run = replace(run, prefer_requiretls=False)
        attempts = await self._deliver_once(domain, mail_from, recipients, message, run)
        if self._sts is not None and not run.relaxed and sts_refetch_wanted(attempts):
            # RFC 8461 §5.1: before deferring for a TLS failure at an enforce hop, look for
            # an updated policy (the domain may have moved its MX or relaxed the mode).
            if await self._sts.refreshed(domain):
                attempts = await self._deliver_once(domain, mail_from, recipients, message, run)
        return [_requiretls_failure(a) for a in attempts] if run.requiretls else attempts

    async def _deliver_once(
        self, domain: str, mail_from: str, recipients: list[str], message: bytes, run: _Run
    ) -> list[Attempt]:
        if self._pool.closed:
            raise RuntimeError("OutboundTransport is closed")
        self._pool.sweep_idle()
        bad = [r for r in [mail_from, *recipients] if _BAD_ADDRESS_CHARS.search(r)]
        if bad or any("@" not in r for r in recipients):
            return [
                Attempt(
                    r, AttemptStatus.FAILED, "invalid_address", "address cannot be sent in an SMTP command"
                )
                for r in recipients
            ]
        try:
            hops = await self._planner.plan(
                domain, run.policy, requiretls=run.requiretls, relaxed=run.relaxed
            )
        except HopError as exc:
            return [exc.attempt(r) for r in recipients]

        failure: HopError | None = None
        budget = MAX_ADDRESSES_PER_DELIVERY
        for hop in hops:
            if budget <= 0:
                break
            if hop.blocked is not None:
                if hop.blocked_permanently:
                    failure = HopError(
                        REQUIRETLS_UNSUPPORTED, hop.blocked, Where(hop.name), AttemptStatus.FAILED
                    )
                else:
                    failure = HopError("tls_required", hop.blocked, Where(hop.name))
                continue
            try:
                addresses = await self._resolver.resolve_addresses(hop.name)
            except (DnsLookupError, ValueError) as exc:
                failure = HopError("dns_failure", str(exc), Where(hop.name))
                continue
            if not addresses:
                failure = HopError("dns_failure", f"{hop.name} has no address records", Where(hop.name))
                continue
            for ip in addresses[:budget]:
                budget -= 1
                try:
                    done = await self._deliver_via(hop, ip, mail_from, recipients, message, run)
                    # Evidence (issue 15): the digest of the exact bytes handed to this hop,
                    # the same for every recipient of the transaction.
                    digest = sent_digest(message)
                    return [with_sent(a, digest) for a in done]
                except HopError as exc:
                    failure = exc
        if failure is None:  # plan never returns an empty list
            raise RuntimeError("no delivery route was planned")
        return [failure.attempt(r) for r in recipients]

    async def close(self) -> None:
        """Close every pooled connection politely (QUIT) and refuse further deliveries."""
        await self._pool.close()

    async def _deliver_via(
        self, hop: Hop, ip: str, mail_from: str, recipients: list[str], message: bytes, run: _Run
    ) -> list[Attempt]:
        async with self._pool.limit(hop):
            session, unprobed = await self._pool.checkout(hop, ip)
            requiretls = run.requiretls or (run.prefer_requiretls and _offers_requiretls(session))
            if run.requiretls and not _offers_requiretls(session):
                # RFC 8689 §4.2.1 (4): the next hop must itself promise to keep the
                # requirement; this one does not, so nothing is sent to it.
                self._pool.release(session)
                detail = f"{hop.name} does not offer REQUIRETLS over verified TLS"
                raise HopError(REQUIRETLS_UNSUPPORTED, detail, session.where, AttemptStatus.FAILED)
            try:
                attempts = await self._transact_on(session, hop, mail_from, recipients, message, requiretls)
            except HopError as exc:
                abort(session.smtp)
                if not (unprobed and exc.reason == "connection_failed"):
                    raise
                # A pooled connection reused without the RSET probe was gone before any
                # data went out: nothing was delivered, so try once on a new connection.
                session = await self._pool.open(hop, ip, session.key)
                try:
                    attempts = await self._transact_on(
                        session, hop, mail_from, recipients, message, requiretls
                    )
                except HopError:
                    abort(session.smtp)
                    raise
            except Exception:
                # Whatever else went wrong (a bug, a reply nobody foresaw), the connection is
                # in an unknown state: drop it rather than leave it open and out of the pool.
                abort(session.smtp)
                raise
            self._pool.release(session)
            return attempts

    async def _transact_on(
        self,
        session: Session,
        hop: Hop,
        mail_from: str,
        recipients: list[str],
        message: bytes,
        requiretls: bool = False,
    ) -> list[Attempt]:
        where = session.where
        if (
            where.tls.verified
            and hop.level is TlsPolicy.REQUIRE_VERIFIED
            and where.tls.verified_by != hop.verified_by
        ):
            # A pooled session may have been opened for another request with the
            # same level; record what vouched for it on *this* delivery.
            where = replace(where, tls=replace(where.tls, verified_by=hop.verified_by))
        return await transact(
            session, where, mail_from, recipients, message, self._command_timeout, requiretls=requiretls
        )


@dataclass(frozen=True, slots=True)
class _Run:
    """What one ``deliver`` call asked for."""

    policy: TlsPolicy
    requiretls: bool
    relaxed: bool
    prefer_requiretls: bool = False


def _offers_requiretls(session: Session) -> bool:
    return session.where.tls.verified and session.smtp.supports_extension("requiretls")


def _requiretls_failure(attempt: Attempt) -> Attempt:
    """A REQUIRETLS message that could not go over TLS is returned, not retried in the clear
    or later (RFC 8689 §4.2.1): a permanent failure with 5.7.30 (RFC 8689 §6)."""
    if attempt.reason not in (REQUIRETLS_UNSUPPORTED, "tls_required"):
        return attempt
    detail = f"REQUIRETLS support required: {attempt.detail}"[:300]
    return replace(attempt, status=AttemptStatus.FAILED, enhanced_code="5.7.30", detail=detail)
