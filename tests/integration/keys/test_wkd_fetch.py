"""WKD and VKS lookups against a loopback HTTPS server and DNS server.

``host_overrides`` stands in for the DNS answer of the hosts that exist; every other
name is NXDOMAIN from the test DNS server, which is what makes WKD fall back from the
advanced to the direct method (draft-koch-openpgp-webkey-service-19 §3.1).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer, Route

from sealmail.net.dns import Resolver
from sealmail.net.http_client import SafeHttpClient
from sealmail.secureline.key_cache import DiscoveryStatus, InMemoryDiscoveryCache
from sealmail.secureline.vks import fetch_vks
from sealmail.secureline.wkd import fetch_wkd

pytestmark = pytest.mark.timeout(30)

ADDRESS = "Joe.Doe@Example.ORG"
HASH = "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
ADVANCED_PATH = f"/.well-known/openpgpkey/example.org/hu/{HASH}"
DIRECT_PATH = f"/.well-known/openpgpkey/hu/{HASH}"
# A real certificate made with gpg 2.2 (ed25519 + cv25519) for Joe Doe <joe.doe@example.org>.
JOE_CERT = base64.b64decode(
    "mDMEawamURYJKwYBBAHaRw8BAQdAF0VCnLrryp35Ms6UBzUw5eugSK7U/qKOnn9KfhkoFKK0HUpv"
    "ZSBEb2UgPGpvZS5kb2VAZXhhbXBsZS5vcmc+iJAEExYIADgWIQR7ooJiqicrbJE3pasaudQhDb+A"
    "mwUCawamUQIbAwULCQgHAgYVCgkICwIEFgIDAQIeAQIXgAAKCRAaudQhDb+AmwBPAQCEkr5PKPt+"
    "UsI1ndTHfO8bRv5BhNVgAP7lQni/oTbF2gEAryIU9aJ2emqO1lD+qfjBqVJcMC+gmOL1S8GND2XJ"
    "yg+4OARrBqZREgorBgEEAZdVAQUBAQdAwX7R49FGdd8pdO6z/cUpqibWaMqZ3+GbCwwLwA2iGC0D"
    "AQgHiHgEGBYIACAWIQR7ooJiqicrbJE3pasaudQhDb+AmwUCawamUQIbDAAKCRAaudQhDb+Am7Og"
    "APsHp7wSipvxPHE0QG+EuhNv2w4wn7MEdIINv9GIdKhkOQD/Y43ciAAH0pkU1pvbAIiiYrGpcBzs"
    "Q/JJXjifufVBHw4="
)
ARMORED = (
    b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
    + base64.encodebytes(JOE_CERT)
    + b"-----END PGP PUBLIC KEY BLOCK-----\n"
)


@pytest.fixture(scope="module")
def ca() -> Iterator[TestCA]:
    with TestCA() as test_ca:
        yield test_ca


@pytest.fixture
def web(ca: TestCA) -> Iterator[HttpsServer]:
    with HttpsServer(ca.issue("openpgpkey.example.org", "example.org", "keys.example.net")) as server:
        yield server


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


def client(ca: TestCA, dns: DnsServer, overrides: dict[str, tuple[str, int]]) -> SafeHttpClient:
    return SafeHttpClient(
        Resolver(nameservers=[dns.address], timeout=2.0),
        allow_loopback=True,
        ca_file=ca.ca_file,
        host_overrides=overrides,
        timeout=5.0,
    )


def serve_cert(web: HttpsServer, path: str, body: bytes = JOE_CERT) -> None:
    web.set_route(path, Route(200, body, {"Content-Type": "application/octet-stream"}))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_advanced_method_finds_the_key(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    serve_cert(web, ADVANCED_PATH)
    serve_cert(web, DIRECT_PATH)
    http = client(ca, dns, {"openpgpkey.example.org": web.address, "example.org": web.address})
    result = run(fetch_wkd(ADDRESS, http))
    assert (result.status, result.method, result.cert) == (DiscoveryStatus.FOUND, "advanced", JOE_CERT)
    assert web.requests == [(f"{ADVANCED_PATH}?l=Joe.Doe", "openpgpkey.example.org")]


def test_direct_method_is_used_when_the_openpgpkey_subdomain_does_not_exist(
    ca: TestCA, dns: DnsServer, web: HttpsServer
) -> None:
    serve_cert(web, DIRECT_PATH)
    http = client(ca, dns, {"example.org": web.address})
    result = run(fetch_wkd(ADDRESS, http))
    assert (result.status, result.method, result.cert) == (DiscoveryStatus.FOUND, "direct", JOE_CERT)
    assert web.requests == [(f"{DIRECT_PATH}?l=Joe.Doe", "example.org")]
    assert ("openpgpkey.example.org.", "A") in dns.queries


def test_a_404_from_the_advanced_host_does_not_fall_back(
    ca: TestCA, dns: DnsServer, web: HttpsServer
) -> None:
    # draft §3.1: only a missing sub-domain allows the direct method.
    serve_cert(web, DIRECT_PATH)
    http = client(ca, dns, {"openpgpkey.example.org": web.address, "example.org": web.address})
    result = run(fetch_wkd(ADDRESS, http))
    assert (result.status, result.method) == (DiscoveryStatus.NOT_FOUND, "advanced")
    assert [path for path, _ in web.requests] == [f"{ADVANCED_PATH}?l=Joe.Doe"]


def test_a_failing_lookup_of_the_advanced_host_is_an_error_not_a_fallback(
    ca: TestCA, dns: DnsServer, web: HttpsServer
) -> None:
    dns.servfail("openpgpkey.example.org")
    serve_cert(web, DIRECT_PATH)
    result = run(fetch_wkd(ADDRESS, client(ca, dns, {"example.org": web.address})))
    assert result.status is DiscoveryStatus.ERROR
    assert "dns_failure" in result.detail
    assert web.requests == []


def test_404_on_the_direct_method_is_not_found(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    result = run(fetch_wkd(ADDRESS, client(ca, dns, {"example.org": web.address})))
    assert (result.status, result.method, result.cert) == (DiscoveryStatus.NOT_FOUND, "direct", None)


def test_a_domain_without_any_web_host_has_no_key(ca: TestCA, dns: DnsServer) -> None:
    result = run(fetch_wkd(ADDRESS, client(ca, dns, {})))
    assert (result.status, result.method) == (DiscoveryStatus.NOT_FOUND, None)


def test_an_armored_answer_is_an_error(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    serve_cert(web, ADVANCED_PATH, ARMORED)
    result = run(fetch_wkd(ADDRESS, client(ca, dns, {"openpgpkey.example.org": web.address})))
    assert result.status is DiscoveryStatus.ERROR
    assert "binary" in result.detail


def test_a_redirect_is_an_error_and_is_not_followed(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    web.set_redirect(ADVANCED_PATH, f"https://example.org{DIRECT_PATH}")
    serve_cert(web, DIRECT_PATH)
    overrides = {"openpgpkey.example.org": web.address, "example.org": web.address}
    result = run(fetch_wkd(ADDRESS, client(ca, dns, overrides)))
    assert result.status is DiscoveryStatus.ERROR
    assert len(web.requests) == 1


def test_a_blocked_address_is_an_error(ca: TestCA, dns: DnsServer) -> None:
    dns.add("openpgpkey.example.org", "A", "10.1.2.3")
    result = run(fetch_wkd(ADDRESS, client(ca, dns, {})))
    assert result.status is DiscoveryStatus.ERROR
    assert "blocked_address" in result.detail


def test_negative_cache_hit_avoids_a_second_request(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    http = client(ca, dns, {"openpgpkey.example.org": web.address})
    cache = InMemoryDiscoveryCache()
    now = [1_000_000.0]

    async def scenario() -> list[tuple[DiscoveryStatus, bool]]:
        results = []
        for advance in (0.0, 60.0, 3600.0):
            now[0] += advance
            result = await fetch_wkd(ADDRESS, http, cache=cache, clock=lambda: now[0])
            results.append((result.status, result.cached))
        return results

    outcomes = run(scenario())
    assert outcomes == [
        (DiscoveryStatus.NOT_FOUND, False),
        (DiscoveryStatus.NOT_FOUND, True),  # within the hour: answered from the cache
        (DiscoveryStatus.NOT_FOUND, False),  # the hour ran out: asked again
    ]
    assert len(web.requests) == 2


def test_errors_are_cached_briefly(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    web.set_text(ADVANCED_PATH, "oops", status=503)
    http = client(ca, dns, {"openpgpkey.example.org": web.address})
    cache = InMemoryDiscoveryCache()
    now = [1_000_000.0]

    async def scenario() -> list[bool]:
        cached = []
        for advance in (0.0, 299.0, 2.0):
            now[0] += advance
            result = await fetch_wkd(ADDRESS, http, cache=cache, clock=lambda: now[0])
            assert result.status is DiscoveryStatus.ERROR
            cached.append(result.cached)
        return cached

    assert run(scenario()) == [False, True, False]
    assert len(web.requests) == 2


def test_a_found_key_is_served_from_the_cache(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    serve_cert(web, ADVANCED_PATH)
    http = client(ca, dns, {"openpgpkey.example.org": web.address})
    cache = InMemoryDiscoveryCache()

    async def scenario() -> Any:
        await fetch_wkd(ADDRESS, http, cache=cache)
        return await fetch_wkd("joe.doe@example.org", http, cache=cache)

    second = run(scenario())
    assert (second.status, second.method, second.cert, second.cached) == (
        DiscoveryStatus.FOUND,
        "advanced",
        JOE_CERT,
        True,
    )
    assert len(web.requests) == 1


# -- VKS ------------------------------------------------------------------------------

VKS_BASE = "https://keys.example.net"
VKS_PATH = "/vks/v1/by-email/joe.doe%40example.org"


def test_vks_returns_the_armored_key(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    web.set_route(VKS_PATH, Route(200, ARMORED, {"Content-Type": "application/pgp-keys"}))
    http = client(ca, dns, {"keys.example.net": web.address})
    result = run(fetch_vks("joe.doe@example.org", VKS_BASE, http))
    assert (result.status, result.cert) == (DiscoveryStatus.FOUND, ARMORED)
    assert web.requests == [(VKS_PATH, "keys.example.net")]


def test_vks_404_is_not_found_and_cached(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    http = client(ca, dns, {"keys.example.net": web.address})
    cache = InMemoryDiscoveryCache()

    async def scenario() -> list[tuple[DiscoveryStatus, bool]]:
        out = []
        for _ in range(2):
            result = await fetch_vks("joe.doe@example.org", VKS_BASE + "/", http, cache=cache)
            out.append((result.status, result.cached))
        return out

    assert run(scenario()) == [(DiscoveryStatus.NOT_FOUND, False), (DiscoveryStatus.NOT_FOUND, True)]
    assert len(web.requests) == 1


def test_vks_rate_limit_is_an_error(ca: TestCA, dns: DnsServer, web: HttpsServer) -> None:
    web.set_text(VKS_PATH, "slow down", status=429)
    result = run(
        fetch_vks("joe.doe@example.org", VKS_BASE, client(ca, dns, {"keys.example.net": web.address}))
    )
    assert result.status is DiscoveryStatus.ERROR
    assert "429" in result.detail
