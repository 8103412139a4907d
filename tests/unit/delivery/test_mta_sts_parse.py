"""Parsing MTA-STS policy bodies and TXT records (RFC 8461 §3)."""

from __future__ import annotations

import pytest

from sealmail.delivery.mta_sts import (
    MAX_AGE_LIMIT,
    StsMode,
    StsPolicyError,
    parse_policy,
    parse_txt_id,
)

GOOD = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.example.net\r\nmax_age: 604800\r\n"


def test_parses_an_enforce_policy_with_crlf_lines() -> None:
    policy = parse_policy(GOOD)
    assert policy.mode is StsMode.ENFORCE
    assert policy.mx == ("mx1.example.org", "*.example.net")
    assert policy.max_age == 604800


def test_accepts_lf_lines_and_ignores_unknown_keys() -> None:
    text = "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\nfuture: yes\n"
    assert parse_policy(text).mode is StsMode.TESTING


def test_mode_none_needs_no_mx() -> None:
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 1\n").mx == ()


def test_enforce_policy_maps_to_destination_patterns() -> None:
    destination = parse_policy(GOOD).to_destination()
    assert destination.sts_mode == "enforce"
    assert destination.sts_mx_patterns == ("mx1.example.org", "*.example.net")


def test_testing_policy_contributes_no_patterns() -> None:
    text = "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\n"
    destination = parse_policy(text).to_destination()
    assert destination.sts_mode == "testing"
    assert destination.sts_mx_patterns == ()


@pytest.mark.parametrize(
    "text",
    [
        "mode: enforce\nmx: mx.example.org\nmax_age: 1\n",  # no version
        "version: STSv2\nmode: enforce\nmx: mx.example.org\nmax_age: 1\n",
        "version: STSv1\nmode: strict\nmx: mx.example.org\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\n",  # enforce without mx
        "version: STSv1\nmode: enforce\nmx: mx.example.org\n",  # no max_age
        "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: -5\n",
        f"version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: {MAX_AGE_LIMIT + 1}\n",
        "version: STSv1\nmode: enforce\nmx: *.*.example.org\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: mx .example.org\nmax_age: 1\n",
        "version: STSv1\ngarbage line\n",
        "",
    ],
)
def test_rejects_malformed_policies(text: str) -> None:
    with pytest.raises(StsPolicyError):
        parse_policy(text)


def test_max_age_at_the_limit_is_accepted() -> None:
    text = f"version: STSv1\nmode: none\nmax_age: {MAX_AGE_LIMIT}\n"
    assert parse_policy(text).max_age == MAX_AGE_LIMIT


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20240101T0000"], "20240101T0000"),
        (["v=STSv1;id=abc123;"], "abc123"),
        (["v=spf1 -all", "v=STSv1; id=x1"], "x1"),
        (["v=STSv1; id=a", "v=STSv1; id=b"], None),  # two records: no policy
        (["v=STSv1; id=not-alnum!"], None),
        (["v=STSv1"], None),
        ([], None),
    ],
)
def test_txt_record_id(records: list[str], expected: str | None) -> None:
    assert parse_txt_id(records) == expected


# -- strict parsing (issue 12.4) -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # RFC 8461 §3.2 field names are lower case: these policies have no version / mode.
        "Version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 1\n",
        "version: STSv1\nMODE: enforce\nmx: mx.example.org\nmax_age: 1\n",
        # A repeated field is ambiguous: the policy is invalid, not "first one wins".
        "version: STSv1\nmode: enforce\nmode: none\nmx: mx.example.org\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\nmax_age: 1\n",
        "version: STSv1\nversion: STSv1\nmode: none\nmax_age: 1\n",
    ],
)
def test_strict_field_names_and_no_duplicates(text: str) -> None:
    with pytest.raises(StsPolicyError):
        parse_policy(text)


def test_single_label_mx_names_are_allowed() -> None:
    text = "version: STSv1\nmode: enforce\nmx: mailhost\nmx: *.internal\nmax_age: 60\n"
    assert parse_policy(text).mx == ("mailhost", "*.internal")


def test_repeated_mx_and_unknown_fields_are_fine() -> None:
    text = "version: STSv1\nmode: enforce\nmx: a.example\nmx: b.example\nx-ext: 1\nx-ext: 2\nmax_age: 60\n"
    assert parse_policy(text).mx == ("a.example", "b.example")


AGREED = [
    GOOD,
    "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\nfuture: yes\n",
    "version: STSv1\nmode: none\nmax_age: 1\n",
    "version: STSv1\nmode: enforce\nmx: mailhost\nmax_age: 60\n",
    "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmx: *.b.example\r\nmax_age: 31557600\r\n",
    "version:STSv1\nmode:\tenforce\nmx:  a.example\nmax_age: 5\n",
]


@pytest.mark.parametrize("text", AGREED)
def test_agrees_with_postfix_mta_sts_resolver_on_valid_policies(text: str) -> None:
    """postfix-mta-sts-resolver's parser is an independent reading of RFC 8461 §3.2."""
    other = pytest.importorskip("postfix_mta_sts_resolver.utils").parse_mta_sts_policy(text)
    ours = parse_policy(text)
    assert other["version"] == "STSv1"
    assert (ours.mode.value, list(ours.mx), ours.max_age) == (
        other["mode"],
        other["mx"],
        int(other["max_age"]),
    )


@pytest.mark.parametrize(
    "text",
    [
        "Version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 1\n",
        "version: STSv1\nMode: enforce\nmx: mx.example.org\nmax_age: 1\n",
    ],
)
def test_field_names_are_case_sensitive_like_postfix_mta_sts_resolver(text: str) -> None:
    """The resolver reads ``Version`` / ``Mode`` as unknown keys; so do we (and refuse)."""
    other = pytest.importorskip("postfix_mta_sts_resolver.utils").parse_mta_sts_policy(text)
    assert other.get("version") != "STSv1" or other.get("mode") != "enforce"
    with pytest.raises(StsPolicyError):
        parse_policy(text)
