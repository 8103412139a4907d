"""Pure rules for combining TLS policy levels."""

from __future__ import annotations

import pytest

from sealmail.domain.message import header_facts
from sealmail.domain.tls_policy import (
    DestinationPolicy,
    Stream,
    TlsPolicy,
    effective_policy,
    mx_matches_sts,
    relaxation_refused,
    resolve_requested,
)


def test_levels_are_ordered_weakest_to_strongest() -> None:
    ranks = [
        p.rank
        for p in (
            TlsPolicy.OPPORTUNISTIC,
            TlsPolicy.REQUIRE,
            TlsPolicy.REQUIRE_VERIFIED,
            TlsPolicy.DANE,
        )
    ]
    assert ranks == sorted(ranks)
    assert TlsPolicy.REQUIRE.at_least(TlsPolicy.OPPORTUNISTIC) is TlsPolicy.REQUIRE
    assert TlsPolicy.REQUIRE.at_least(TlsPolicy.DANE) is TlsPolicy.DANE


def test_no_destination_policy_keeps_the_requested_level() -> None:
    for level in TlsPolicy:
        assert effective_policy(level, DestinationPolicy()) is level


def test_sts_enforce_raises_to_verified_but_never_lowers() -> None:
    enforce = DestinationPolicy(sts_mode="enforce", sts_mx_patterns=("mx.example.org",))
    assert effective_policy(TlsPolicy.OPPORTUNISTIC, enforce) is TlsPolicy.REQUIRE_VERIFIED
    assert effective_policy(TlsPolicy.REQUIRE, enforce) is TlsPolicy.REQUIRE_VERIFIED
    assert effective_policy(TlsPolicy.DANE, enforce) is TlsPolicy.DANE


@pytest.mark.parametrize("mode", ["testing", "none"])
def test_sts_testing_and_none_do_not_raise_the_level(mode: str) -> None:
    policy = DestinationPolicy(sts_mode=mode)
    assert effective_policy(TlsPolicy.OPPORTUNISTIC, policy) is TlsPolicy.OPPORTUNISTIC


def test_usable_dane_raises_to_dane_and_wins_over_sts() -> None:
    both = DestinationPolicy(sts_mode="enforce", sts_mx_patterns=("*.example.org",), dane_usable=True)
    assert effective_policy(TlsPolicy.OPPORTUNISTIC, both) is TlsPolicy.DANE


def test_phi_stream_never_goes_below_require() -> None:
    chosen = resolve_requested(Stream.PHI, TlsPolicy.OPPORTUNISTIC, None, TlsPolicy.OPPORTUNISTIC)
    assert chosen is TlsPolicy.REQUIRE


def test_message_choice_beats_tenant_and_stream_default() -> None:
    chosen = resolve_requested(
        Stream.TRANSACTIONAL, TlsPolicy.REQUIRE_VERIFIED, TlsPolicy.REQUIRE, TlsPolicy.OPPORTUNISTIC
    )
    assert chosen is TlsPolicy.REQUIRE_VERIFIED
    assert (
        resolve_requested(Stream.BROADCAST, None, TlsPolicy.REQUIRE, TlsPolicy.OPPORTUNISTIC)
        is TlsPolicy.REQUIRE
    )


@pytest.mark.parametrize(
    ("host", "patterns", "expected"),
    [
        ("mx1.example.org", ("mx1.example.org",), True),
        ("MX1.Example.org.", ("mx1.example.org",), True),
        ("mx1.example.org", ("*.example.org",), True),
        ("a.mx1.example.org", ("*.example.org",), False),  # wildcard covers one label only
        ("example.org", ("*.example.org",), False),
        ("mx1.example.net", ("*.example.org", "mx1.example.org"), False),
    ],
)
def test_mx_pattern_matching_follows_rfc8461(host: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert mx_matches_sts(host, patterns) is expected


# -- RFC 8689 §5: "TLS-Required: No" ----------------------------------------------------------


def test_tls_required_no_is_honoured_only_for_plain_phi_free_mail() -> None:
    assert relaxation_refused(TlsPolicy.OPPORTUNISTIC, phi=False, stream=Stream.TRANSACTIONAL) is None
    assert relaxation_refused(TlsPolicy.OPPORTUNISTIC, phi=False, stream=Stream.BROADCAST) is None
    assert relaxation_refused(TlsPolicy.OPPORTUNISTIC, phi=True, stream=Stream.TRANSACTIONAL) == (
        "DLP found PHI in the message"
    )
    assert (
        relaxation_refused(TlsPolicy.REQUIRE, phi=False, stream=Stream.PHI) == "the phi stream requires TLS"
    )
    assert relaxation_refused(TlsPolicy.REQUIRE, phi=False, stream=Stream.TRANSACTIONAL) == (
        "the message's policy requires TLS (require)"
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (b"TLS-Required: No\r\n", True),
        (b"tls-required:   no  \r\n", True),
        (b"TLS-Required: Yes\r\n", False),
        (b"TLS-Required: No\r\nTLS-Required: No\r\n", False),  # one field, one value (RFC 8689 §5)
        (b"", False),
    ],
)
def test_the_tls_required_field_is_read_strictly(fields: bytes, expected: bool) -> None:
    raw = b"From: a@b.example\r\n" + fields + b"Subject: x\r\n\r\nbody\r\n"
    assert header_facts(raw).tls_required_no is expected
