"""The outbound-fetch address policy and URL checks (no network needed)."""

from __future__ import annotations

import asyncio

import pytest

from sealmail.net.http_client import (
    AddressClass,
    FetchError,
    FetchReason,
    SafeHttpClient,
    address_allowed,
    classify_address,
    redact_url,
)

CLASSIFICATION = [
    # RFC 1918 private ranges, edges included.
    ("10.0.0.1", AddressClass.PRIVATE),
    ("10.255.255.255", AddressClass.PRIVATE),
    ("172.16.0.1", AddressClass.PRIVATE),
    ("172.31.255.254", AddressClass.PRIVATE),
    ("192.168.1.1", AddressClass.PRIVATE),
    ("127.0.0.1", AddressClass.LOOPBACK),
    ("127.255.0.9", AddressClass.LOOPBACK),
    ("::1", AddressClass.LOOPBACK),
    ("fe80::1", AddressClass.LINK_LOCAL),
    ("fe80::1%eth0", AddressClass.LINK_LOCAL),
    ("febf::1", AddressClass.LINK_LOCAL),
    ("fc00::1", AddressClass.PRIVATE),
    ("fd00:ec2::254", AddressClass.PRIVATE),  # AWS metadata over IPv6 (unique local)
    ("169.254.169.254", AddressClass.METADATA),
    ("169.254.1.1", AddressClass.LINK_LOCAL),
    ("100.64.0.1", AddressClass.SHARED),
    ("100.127.255.254", AddressClass.SHARED),
    ("0.0.0.0", AddressClass.UNSPECIFIED),
    ("0.1.2.3", AddressClass.UNSPECIFIED),
    ("::", AddressClass.UNSPECIFIED),
    ("::ffff:10.0.0.1", AddressClass.PRIVATE),
    ("::ffff:127.0.0.1", AddressClass.LOOPBACK),
    ("::ffff:169.254.169.254", AddressClass.METADATA),
    ("64:ff9b::a00:1", AddressClass.PRIVATE),  # NAT64 of 10.0.0.1
    ("64:ff9b:1::1", AddressClass.PRIVATE),  # RFC 8215 local-use NAT64
    ("2002:a00:1::1", AddressClass.PRIVATE),  # 6to4 of 10.0.0.1
    ("224.0.0.1", AddressClass.MULTICAST),
    ("ff02::1", AddressClass.MULTICAST),
    ("240.0.0.1", AddressClass.RESERVED),
    ("255.255.255.255", AddressClass.RESERVED),
    ("192.0.2.10", AddressClass.NON_GLOBAL),  # TEST-NET-1 (RFC 5737)
    ("198.18.0.1", AddressClass.NON_GLOBAL),  # benchmarking (RFC 2544)
    ("2001:db8::1", AddressClass.NON_GLOBAL),  # documentation (RFC 3849)
    # Public addresses are the only ones allowed.
    ("8.8.8.8", AddressClass.PUBLIC),
    ("1.1.1.1", AddressClass.PUBLIC),
    ("172.32.0.1", AddressClass.PUBLIC),  # just past 172.16/12
    ("100.128.0.1", AddressClass.PUBLIC),  # just past 100.64/10
    ("2606:4700:4700::1111", AddressClass.PUBLIC),
    ("::ffff:8.8.8.8", AddressClass.PUBLIC),
    ("64:ff9b::808:808", AddressClass.PUBLIC),  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "expected"), CLASSIFICATION)
def test_addresses_are_classified(address: str, expected: AddressClass) -> None:
    assert classify_address(address) is expected


@pytest.mark.parametrize(("address", "expected"), CLASSIFICATION)
def test_only_public_addresses_are_allowed_by_default(address: str, expected: AddressClass) -> None:
    assert address_allowed(address) is (expected is AddressClass.PUBLIC)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "8.8.8.8"])
def test_allow_loopback_admits_loopback(address: str) -> None:
    assert address_allowed(address, allow_loopback=True)


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "169.254.169.254", "fe80::1", "fc00::1", "100.64.0.1", "0.0.0.0", "::"]
)
def test_allow_loopback_never_admits_private_or_link_local(address: str) -> None:
    assert not address_allowed(address, allow_loopback=True)


def test_classifying_a_non_address_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        classify_address("example.org")


def test_redacted_urls_drop_query_and_userinfo() -> None:
    url = "https://user:pw@openpgpkey.example.org/.well-known/openpgpkey/hu/abc?l=joe.doe#x"
    assert redact_url(url) == "https://openpgpkey.example.org/.well-known/openpgpkey/hu/abc?…"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/",  # https only unless allow_http
        "ftp://example.org/file",
        "file:///etc/passwd",
        "https://user@example.org/",
        "https:///nohost",
        "https://127.1/",  # inet_aton shorthand for 127.0.0.1
        "https://2130706433/",  # decimal 127.0.0.1
        "https://0x7f.0.0.1/",
        "https://127.0.0.0x1/",  # ends in a hex number: 127.0.0.1 to inet_aton
        "https://0177.0.0.0X1/",
        "https://example.org:0/",
        "https://example.org:99999/",
        "https://exa mple.org/",
        "https://example.org/\r\nX-Injected: 1",
        "https://example.org/päth",
    ],
)
def test_bad_urls_are_refused_before_any_lookup(url: str) -> None:
    client = SafeHttpClient(None)
    with pytest.raises(FetchError) as info:
        asyncio.run(client.get(url))
    assert info.value.reason is FetchReason.BAD_URL


@pytest.mark.parametrize("url", ["https://10.0.0.1/", "https://[::1]/", "https://169.254.169.254/latest"])
def test_ip_literals_are_vetted_like_resolved_addresses(url: str) -> None:
    client = SafeHttpClient(None)
    with pytest.raises(FetchError) as info:
        asyncio.run(client.get(url))
    assert info.value.reason is FetchReason.BLOCKED_ADDRESS


def test_error_details_never_contain_the_query() -> None:
    client = SafeHttpClient(None)
    with pytest.raises(FetchError) as info:
        asyncio.run(client.get("https://10.0.0.1/hu/x?l=secret.person"))
    assert "secret" not in str(info.value)
    assert "secret" not in info.value.detail


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding", "Accept-Encoding"])
def test_callers_cannot_set_the_headers_the_client_owns(name: str) -> None:
    client = SafeHttpClient(None)
    with pytest.raises(ValueError, match="set by SafeHttpClient"):
        asyncio.run(client.post("https://example.org/hook", b"{}", {name: "x"}))


def test_header_injection_is_a_caller_error() -> None:
    client = SafeHttpClient(None)
    with pytest.raises(ValueError, match="invalid value"):
        asyncio.run(client.post("https://example.org/hook", b"{}", {"X-Sig": "a\r\nHost: evil"}))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),  # RFC 6761 §6.3
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),  # an IPv4-mapped loopback is still this machine
        ("localhost.example.org", False),
        ("mail.clinic.example", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("", False),
    ],
)
def test_one_loopback_rule_for_names_and_literals(host: str, loopback: bool) -> None:
    from sealmail.net.address_policy import is_loopback_host

    assert is_loopback_host(host) is loopback
