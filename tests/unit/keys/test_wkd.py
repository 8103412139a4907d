"""WKD URL construction (draft-koch-openpgp-webkey-service-19 §3.1) and the discovery cache."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import urlsplit

import pytest

from sealmail.secureline.key_cache import (
    DiscoveryEntry,
    DiscoveryStatus,
    DiscoveryTtl,
    InMemoryDiscoveryCache,
)
from sealmail.secureline.wkd import looks_like_binary_cert, split_address, wkd_hash, wkd_urls, zbase32

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


def test_draft_test_vector() -> None:
    # draft §3.1 example: "Joe.Doe@Example.ORG" hashes the local part "joe.doe".
    assert wkd_hash("Joe.Doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
    assert wkd_hash("joe.doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"


def test_urls_for_the_draft_example() -> None:
    advanced, direct = wkd_urls("Joe.Doe@Example.ORG")
    assert advanced == (
        "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/"
        "iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
    )
    assert (
        direct == "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
    )


def test_only_ascii_letters_are_lowercased_before_hashing() -> None:
    # draft §3.1: non-ASCII characters are left unchanged.
    assert wkd_hash("JÖRG") == wkd_hash("jÖrg")
    assert wkd_hash("JÖRG") != wkd_hash("jörg")


def test_the_local_part_is_percent_escaped_in_the_query() -> None:
    advanced, direct = wkd_urls("a+b/c d@example.org")
    for url in (advanced, direct):
        assert urlsplit(url).query == "l=a%2Bb%2Fc%20d"


def test_internationalized_domains_use_a_labels() -> None:
    advanced, direct = wkd_urls("joe@Bücher.example")
    assert advanced.startswith(
        "https://openpgpkey.xn--bcher-kva.example/.well-known/openpgpkey/xn--bcher-kva.example/hu/"
    )
    assert direct.startswith("https://xn--bcher-kva.example/.well-known/openpgpkey/hu/")


def test_the_last_at_sign_splits_the_address() -> None:
    assert split_address('"odd@local"@example.org') == ('"odd@local"', "example.org")


@pytest.mark.parametrize("address", ["", "joe", "@example.org", "joe@"])
def test_non_addresses_are_rejected(address: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        wkd_urls(address)


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", ""), (b"\x00", "yy"), (b"\xff", "9h"), (b"\x00\x00\x00\x00\x00", "yyyyyyyy")],
)
def test_zbase32_pads_with_zero_bits(data: bytes, expected: str) -> None:
    assert zbase32(data) == expected


def test_binary_certificates_are_recognised() -> None:
    assert looks_like_binary_cert(JOE_CERT)  # old-format header, tag 6
    assert looks_like_binary_cert(b"\xc6\x33\x04")  # new-format header, tag 6
    assert not looks_like_binary_cert(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert not looks_like_binary_cert(b"\xc2\x00")  # a signature packet, not a key
    assert not looks_like_binary_cert(b"")


# -- the discovery cache ----------------------------------------------------------------


def entry(status: DiscoveryStatus, now: float = 1000.0) -> DiscoveryEntry:
    return DiscoveryEntry.create(status, now=now, ttl=DiscoveryTtl(found=100, not_found=50, error=10))


@pytest.mark.parametrize(
    ("status", "lifetime"),
    [(DiscoveryStatus.FOUND, 100), (DiscoveryStatus.NOT_FOUND, 50), (DiscoveryStatus.ERROR, 10)],
)
def test_each_answer_kind_lives_for_its_own_ttl(status: DiscoveryStatus, lifetime: float) -> None:
    cache = InMemoryDiscoveryCache()

    async def scenario() -> tuple[bool, bool]:
        await cache.put("wkd", "joe@example.org", entry(status))
        before = await cache.get("wkd", "joe@example.org", now=1000.0 + lifetime - 1)
        after = await cache.get("wkd", "joe@example.org", now=1000.0 + lifetime)
        return before is not None, after is not None

    assert asyncio.run(scenario()) == (True, False)


def test_default_ttls_cache_negative_answers_for_an_hour_and_errors_for_five_minutes() -> None:
    ttl = DiscoveryTtl()
    assert ttl.for_status(DiscoveryStatus.NOT_FOUND) == 3600
    assert ttl.for_status(DiscoveryStatus.ERROR) == 300


def test_keys_are_per_method_and_case_insensitive() -> None:
    cache = InMemoryDiscoveryCache()

    async def scenario() -> tuple[bool, bool]:
        await cache.put("wkd", "Joe.Doe@Example.ORG", entry(DiscoveryStatus.NOT_FOUND))
        same = await cache.get("wkd", "joe.doe@example.org", now=1000.0)
        other_method = await cache.get("vks", "joe.doe@example.org", now=1000.0)
        return same is not None, other_method is not None

    assert asyncio.run(scenario()) == (True, False)


def test_the_in_memory_cache_is_bounded() -> None:
    cache = InMemoryDiscoveryCache(max_entries=2)

    async def scenario() -> list[bool]:
        for name in ("a", "b", "c"):
            await cache.put("wkd", f"{name}@example.org", entry(DiscoveryStatus.NOT_FOUND))
        return [await cache.get("wkd", f"{n}@example.org", now=1000.0) is not None for n in ("a", "b", "c")]

    assert asyncio.run(scenario()) == [False, True, True]
