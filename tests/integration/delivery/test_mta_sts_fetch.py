"""MtaStsFetcher against a loopback HTTPS server and DNS server (RFC 8461 §3.3, §5.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer

from sealmail.delivery.dns import Resolver
from sealmail.delivery.mta_sts import MtaStsFetcher, StsFetchError, StsMode

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
