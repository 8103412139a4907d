"""MtaStsFetcher against a loopback HTTPS server and DNS server (RFC 8461 §3.3, §5.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.integration.delivery.conftest import DeliverFn, MxFarm
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer

from sealmail.delivery.mta_sts import MtaStsFetcher, StsFetchError, StsMode
from sealmail.domain.outcomes import AttemptStatus
from sealmail.net.dns import Resolver

pytestmark = pytest.mark.timeout(20)
DOMAIN = "example.org"
PATH = "/.well-known/mta-sts.txt"
ENFORCE = "version: STSv1\nmode: enforce\nmx: mx1.example.org\nmax_age: 86400\n"


@pytest.fixture
def web(ca: TestCA) -> Iterator[HttpsServer]:
    with HttpsServer(ca.issue(f"mta-sts.{DOMAIN}")) as server:
        yield server


def fetcher(dns: DnsServer, ca: TestCA, web: HttpsServer, **kwargs: object) -> MtaStsFetcher:
    options: dict[str, object] = {
        "ca_file": ca.ca_file,
        "host_overrides": {f"mta-sts.{DOMAIN}": web.address},
        "allow_loopback": True,
    }
    options.update(kwargs)
    return MtaStsFetcher(Resolver(nameservers=[dns.address], timeout=2.0), **options)  # type: ignore[arg-type]


def test_policy_is_fetched_and_cached_until_the_txt_id_changes(
    dns: DnsServer, ca: TestCA, web: HttpsServer
) -> None:
    dns.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=one"')
    web.set_text(PATH, ENFORCE)
    sts = fetcher(dns, ca, web)

    async def scenario() -> list[StsMode | None]:
        modes = []
        for step in range(3):
            if step == 2:
                web.set_text(PATH, ENFORCE.replace("enforce", "testing"))
                dns.set(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=two"')
            policy = await sts.get_policy(DOMAIN)
            modes.append(policy.mode if policy else None)
        return modes

    assert asyncio.run(scenario()) == [StsMode.ENFORCE, StsMode.ENFORCE, StsMode.TESTING]
    assert len(web.requests) == 2  # the unchanged id was served from the cache
    assert web.requests[0][1].startswith(f"mta-sts.{DOMAIN}")


def test_no_txt_record_means_no_policy(dns: DnsServer, ca: TestCA, web: HttpsServer) -> None:
    web.set_text(PATH, ENFORCE)
    assert asyncio.run(fetcher(dns, ca, web).get_policy(DOMAIN)) is None
    assert web.requests == []


def test_redirect_is_not_followed(dns: DnsServer, ca: TestCA, web: HttpsServer) -> None:
    web.set_redirect(PATH, f"https://mta-sts.{DOMAIN}/elsewhere.txt")
    web.set_text("/elsewhere.txt", ENFORCE)
    with pytest.raises(StsFetchError, match="HTTP 301"):
        asyncio.run(fetcher(dns, ca, web).fetch_policy(DOMAIN))
    assert [path for path, _ in web.requests] == [PATH]


def test_wrong_content_type_is_rejected(dns: DnsServer, ca: TestCA, web: HttpsServer) -> None:
    web.set_text(PATH, ENFORCE, content_type="text/html")
    with pytest.raises(StsFetchError, match="text/plain"):
        asyncio.run(fetcher(dns, ca, web).fetch_policy(DOMAIN))


def test_oversized_policy_is_rejected(dns: DnsServer, ca: TestCA, web: HttpsServer) -> None:
    web.set_text(PATH, ENFORCE + "x" * 70_000)
    with pytest.raises(StsFetchError, match="size cap"):
        asyncio.run(fetcher(dns, ca, web).fetch_policy(DOMAIN))


def test_untrusted_certificate_is_rejected(dns: DnsServer, ca: TestCA, untrusted_ca: TestCA) -> None:
    with HttpsServer(untrusted_ca.issue(f"mta-sts.{DOMAIN}")) as bad:
        bad.set_text(PATH, ENFORCE)
        with pytest.raises(StsFetchError):
            asyncio.run(fetcher(dns, ca, bad).fetch_policy(DOMAIN))


def test_loopback_policy_host_is_refused_without_opt_in(dns: DnsServer, ca: TestCA, web: HttpsServer) -> None:
    web.set_text(PATH, ENFORCE)
    with pytest.raises(StsFetchError, match="no acceptable public address"):
        asyncio.run(fetcher(dns, ca, web, allow_loopback=False).fetch_policy(DOMAIN))
    assert web.requests == []


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def clocked(dns: DnsServer, ca: TestCA, web: HttpsServer, clock: Clock) -> MtaStsFetcher:
    """A fetcher on ``clock`` for a published enforce policy (id ``one``)."""
    dns.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=one"')
    web.set_text(PATH, ENFORCE)
    return fetcher(dns, ca, web, clock=clock)


def test_a_policy_near_expiry_is_refreshed_before_it_lapses(
    dns: DnsServer, ca: TestCA, web: HttpsServer
) -> None:
    """Issue 12.4: refresh proactively, so the cache never runs out under an active sender."""
    clock = Clock()
    sts = clocked(dns, ca, web, clock)

    async def scenario() -> list[str | None]:
        seen = []
        await sts.get_policy(DOMAIN)
        clock.now += 3_600  # most of max_age (86400) left: served from the cache
        seen.append(None if (p := await sts.get_policy(DOMAIN)) is None else p.mx[0])
        # The policy host changed its MX list without a new id; with 3 h of 24 left the
        # next lookup fetches again, and the cached policy's clock restarts.
        web.set_text(PATH, ENFORCE.replace("mx1.", "mx2."))
        clock.now += 86_400 - 3_600 - 10_800
        seen.append(None if (p := await sts.get_policy(DOMAIN)) is None else p.mx[0])
        # Past the original expiry the refreshed policy is still in force.
        clock.now += 20_000
        web.set_text(PATH, "busy", status=500)
        seen.append(None if (p := await sts.get_policy(DOMAIN)) is None else p.mx[0])
        return seen

    assert asyncio.run(scenario()) == ["mx1.example.org", "mx2.example.org", "mx2.example.org"]
    assert len(web.requests) == 2


def test_refresh_refetches_a_current_policy_and_failures_back_off(
    dns: DnsServer, ca: TestCA, web: HttpsServer
) -> None:
    """Before deferring on a policy mismatch the transport asks for ``refresh=True``."""
    clock = Clock()
    sts = clocked(dns, ca, web, clock)

    async def scenario() -> list[tuple[str, ...]]:
        await sts.get_policy(DOMAIN)
        web.set_text(PATH, ENFORCE.replace("mx1.", "mx9."))
        fresh = (await sts.destination_policy(DOMAIN, refresh=True)).sts_mx_patterns
        web.set_text(PATH, "busy", status=503)
        clock.now += 1
        kept = (await sts.destination_policy(DOMAIN, refresh=True)).sts_mx_patterns
        clock.now += 60  # inside the five-minute backoff: no new request
        again = (await sts.destination_policy(DOMAIN, refresh=True)).sts_mx_patterns
        return [fresh, kept, again]

    assert asyncio.run(scenario()) == [("mx9.example.org",)] * 3
    assert len(web.requests) == 3


def test_transport_refetches_the_policy_before_deferring_on_an_mx_mismatch(
    dns: DnsServer, ca: TestCA, mx: MxFarm, web: HttpsServer, deliver: DeliverFn
) -> None:
    """RFC 8461 §5.1: the MX moved and the policy with it (same id): deliver, don't defer."""
    sinks = mx.start(
        {
            "127.0.0.2": {"cert": ca.issue("mx1.example.org")},
            "127.0.0.3": {"cert": ca.issue("mx2.example.org")},
        }
    )
    dns.add(DOMAIN, "MX", "10 mx1.example.org.")
    dns.add("mx1.example.org", "A", "127.0.0.2")
    dns.add("mx2.example.org", "A", "127.0.0.3")
    dns.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=one"')
    web.set_text(PATH, ENFORCE)
    sts = fetcher(dns, ca, web)
    [first] = deliver(DOMAIN, ["alice@example.org"], mta_sts=sts)
    assert first.status is AttemptStatus.DELIVERED and first.mx_host == "mx1.example.org"

    dns.set(DOMAIN, "MX", "10 mx2.example.org.")
    web.set_text(PATH, ENFORCE.replace("mx1.", "mx2."))
    [second] = deliver(DOMAIN, ["alice@example.org"], mta_sts=sts)
    assert second.status is AttemptStatus.DELIVERED, second.detail
    assert second.mx_host == "mx2.example.org"
    assert len(sinks["127.0.0.3"].messages) == 1
    assert len(web.requests) == 2


def test_transport_refetches_the_policy_before_deferring_on_a_certificate_failure(
    dns: DnsServer, ca: TestCA, mx: MxFarm, web: HttpsServer, deliver: DeliverFn
) -> None:
    """RFC 8461 §5.1: the MX's certificate broke and the domain relaxed its policy to testing
    (same id, so the cache would keep enforce): refetch, then deliver instead of deferring."""
    sinks = mx.start({"127.0.0.2": {"cert": ca.issue("elsewhere.example.net")}})
    dns.add(DOMAIN, "MX", "10 mx1.example.org.")
    dns.add("mx1.example.org", "A", "127.0.0.2")
    dns.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=one"')
    web.set_text(PATH, ENFORCE)
    sts = fetcher(dns, ca, web)

    [first] = deliver(DOMAIN, ["alice@example.org"], mta_sts=sts)
    assert first.status is AttemptStatus.DEFERRED and first.reason == "tls_required", first.detail
    assert "mismatch" in first.detail
    assert str(first.tls.verified_by) == "mta-sts"  # what demanded the verification
    assert len(web.requests) == 2  # fetched, then refetched before deferring
    assert sinks["127.0.0.2"].messages == []

    web.set_text(PATH, ENFORCE.replace("enforce", "testing"))
    [second] = deliver(DOMAIN, ["alice@example.org"], mta_sts=sts)
    assert second.status is AttemptStatus.DELIVERED, second.detail
    assert len(sinks["127.0.0.2"].messages) == 1
    assert len(web.requests) == 3
