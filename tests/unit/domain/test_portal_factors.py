"""The portal sign-in factor rule (issue 11.1): pure decisions over TLS facts."""

from __future__ import annotations

import pytest

from sealmail.domain.outcomes import TlsInfo
from sealmail.domain.portal_factors import (
    CodeMailPlan,
    NoticeStrength,
    WeakNoticePolicy,
    notice_strength,
    plan_code_mail,
    tls_meets,
    weak_notice_policy,
)
from sealmail.domain.tls_policy import TlsPolicy, VerifiedBy

PLAIN = TlsInfo()
ENCRYPTED = TlsInfo(version="TLSv1.3")
PKIX = TlsInfo(version="TLSv1.3", verified=True, verified_by=VerifiedBy.PKIX)
DANE = TlsInfo(version="TLSv1.3", verified=True, verified_by=VerifiedBy.DANE)


@pytest.mark.parametrize(
    ("level", "met_by"),
    [
        (TlsPolicy.OPPORTUNISTIC, {"plain", "encrypted", "pkix", "dane"}),
        (TlsPolicy.REQUIRE, {"encrypted", "pkix", "dane"}),
        (TlsPolicy.REQUIRE_VERIFIED, {"pkix", "dane"}),
        (TlsPolicy.DANE, {"dane"}),
    ],
)
def test_a_session_meets_a_level_only_with_what_the_level_demands(level: TlsPolicy, met_by: set[str]) -> None:
    sessions = {"plain": PLAIN, "encrypted": ENCRYPTED, "pkix": PKIX, "dane": DANE}
    assert {name for name, tls in sessions.items() if tls_meets(level, tls)} == met_by


def test_a_stripped_notice_is_below_the_phi_level() -> None:
    assert notice_strength(TlsPolicy.REQUIRE_VERIFIED, PLAIN) is NoticeStrength.BELOW
    assert notice_strength(TlsPolicy.REQUIRE_VERIFIED, ENCRYPTED) is NoticeStrength.BELOW
    assert notice_strength(TlsPolicy.REQUIRE_VERIFIED, PKIX) is NoticeStrength.MEETS


def test_strict_is_the_default_and_only_an_explicit_value_loosens() -> None:
    assert weak_notice_policy(None) is WeakNoticePolicy.REQUIRE_STRONG_FACTOR
    assert weak_notice_policy({}) is WeakNoticePolicy.REQUIRE_STRONG_FACTOR
    assert weak_notice_policy({"portal_weak_notice": True}) is WeakNoticePolicy.REQUIRE_STRONG_FACTOR
    assert weak_notice_policy({"portal_weak_notice": "allow_email_code"}) is WeakNoticePolicy.ALLOW_EMAIL_CODE


def test_a_strict_code_mail_carries_the_required_level_or_is_not_sent() -> None:
    strict = WeakNoticePolicy.REQUIRE_STRONG_FACTOR
    assert plan_code_mail(strict, TlsPolicy.REQUIRE_VERIFIED, False) == CodeMailPlan(
        True, TlsPolicy.REQUIRE_VERIFIED
    )
    assert plan_code_mail(strict, TlsPolicy.REQUIRE_VERIFIED, True) == CodeMailPlan(
        False, TlsPolicy.REQUIRE_VERIFIED, "tls_required"
    )
    assert plan_code_mail(strict, TlsPolicy.OPPORTUNISTIC, True).send


def test_a_loosened_code_mail_goes_opportunistic_as_before() -> None:
    plan = plan_code_mail(WeakNoticePolicy.ALLOW_EMAIL_CODE, TlsPolicy.REQUIRE_VERIFIED, True)
    assert plan == CodeMailPlan(True, TlsPolicy.OPPORTUNISTIC)
