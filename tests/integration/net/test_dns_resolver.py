"""The delivery resolver against the loopback DNS server: one query per name in flight, and a
lost query sent once more before the lookup fails (issue 18: many workers starting at once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from tests.support.dns_server import DnsServer
from tests.support.waiting import wait_until_async

from sealmail.net.dns import DnsLookupError, MxStatus, Resolver

pytestmark = pytest.mark.timeout(30)
DOMAIN = "example.org"
MX = "mx1.example.org"
TIMEOUT = 0.3


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add(DOMAIN, "MX", f"10 {MX}.")
        server.add(MX, "A", "127.0.0.2")
        server.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=1"')
        yield server


def asked(dns: DnsServer, name: str, rdtype: str) -> int:
    return dns.queries.count((name.rstrip(".") + ".", rdtype))


def test_concurrent_lookups_of_one_name_share_one_query(dns: DnsServer) -> None:
    resolver = Resolver([dns.address], timeout=5.0)

    async def many() -> list[object]:
        return await asyncio.gather(
            *(resolver.resolve_mx(DOMAIN) for _ in range(50)),
            *(resolver.txt(f"_mta-sts.{DOMAIN}") for _ in range(50)),
            *(resolver.resolve_addresses(MX) for _ in range(50)),
        )

    results = asyncio.run(many())
    assert all(r.status is MxStatus.OK for r in results[:50])  # type: ignore[attr-defined]
    assert results[50:100] == [["v=STSv1; id=1"]] * 50
    assert results[100:] == [["127.0.0.2"]] * 50
    assert asked(dns, DOMAIN, "MX") == 1
    assert asked(dns, f"_mta-sts.{DOMAIN}", "TXT") == 1
    assert asked(dns, MX, "A") == 1
    assert asked(dns, MX, "AAAA") == 1


def test_txt_is_shared_only_while_in_flight(dns: DnsServer) -> None:
    # TXT answers are not cached (an MTA-STS id change must be seen at once): a lookup after
    # the shared one has landed asks again and sees the new record.
    resolver = Resolver([dns.address], timeout=5.0)
    assert asyncio.run(resolver.txt(f"_mta-sts.{DOMAIN}")) == ["v=STSv1; id=1"]
    dns.set(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=2"')
    assert asyncio.run(resolver.txt(f"_mta-sts.{DOMAIN}")) == ["v=STSv1; id=2"]
    assert asked(dns, f"_mta-sts.{DOMAIN}", "TXT") == 2


def test_a_lost_query_is_sent_again_within_the_lookup(dns: DnsServer) -> None:
    dns.drop(DOMAIN, count=1)
    resolver = Resolver([dns.address], timeout=TIMEOUT)
    started = time.monotonic()
    result = asyncio.run(resolver.resolve_mx(DOMAIN))
    took = time.monotonic() - started
    assert result.status is MxStatus.OK
    assert [h.name for h in result.hosts] == [MX]
    assert asked(dns, DOMAIN, "MX") == 2
    assert TIMEOUT <= took < 2 * TIMEOUT + 1.0


def test_a_name_that_never_answers_fails_after_two_tries(dns: DnsServer) -> None:
    dns.drop(DOMAIN)
    resolver = Resolver([dns.address], timeout=TIMEOUT)

    async def many() -> list[object]:
        return await asyncio.gather(*(resolver.resolve_mx(DOMAIN) for _ in range(20)))

    started = time.monotonic()
    results = asyncio.run(many())
    took = time.monotonic() - started
    assert {r.status for r in results} == {MxStatus.DNS_FAILURE}  # type: ignore[attr-defined]
    # Bounded: two tries for all twenty askers, then the lookup gives up (a deferral).
    assert asked(dns, DOMAIN, "MX") == 2
    assert 2 * TIMEOUT - 0.2 <= took < 2 * TIMEOUT + 1.0
    # A failure is not remembered: the next lookup asks again, and succeeds once answered.
    dns.drop(DOMAIN, count=0)
    assert asyncio.run(resolver.resolve_mx(DOMAIN)).status is MxStatus.OK
    assert asked(dns, DOMAIN, "MX") == 3


def test_a_cancelled_asker_does_not_cancel_the_others(dns: DnsServer) -> None:
    dns.drop(MX, count=1)  # the first A query is lost, so the lookup is still in flight below
    resolver = Resolver([dns.address], timeout=TIMEOUT)

    async def run() -> list[str]:
        first = asyncio.create_task(resolver.resolve_addresses(MX))
        second = asyncio.create_task(resolver.resolve_addresses(MX))
        # Cancelled once the shared query is on the wire (the first, dropped, try).
        await wait_until_async(lambda: asked(dns, MX, "A") >= 1, 5, "the shared A query sent")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(run()) == ["127.0.0.2"]
    assert asked(dns, MX, "A") == 2  # the lost one and its retry: nobody asked a third time


def test_timeouts_surface_as_dns_lookup_error(dns: DnsServer) -> None:
    dns.drop(f"_mta-sts.{DOMAIN}")
    resolver = Resolver([dns.address], timeout=TIMEOUT)
    with pytest.raises(DnsLookupError):
        asyncio.run(resolver.txt(f"_mta-sts.{DOMAIN}"))
    assert asked(dns, f"_mta-sts.{DOMAIN}", "TXT") == 2
