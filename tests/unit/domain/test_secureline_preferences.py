"""SecureLine under a patient's confidential-communication preferences (164.522(b)): the
preference binds the decision and is named in its reason; nothing falls back silently."""

from __future__ import annotations

import pytest

from sealmail.domain.secureline import (
    CommsPreference,
    DlpAction,
    DlpFacts,
    KeyFact,
    Method,
    PlainConsent,
    Policy,
    RecipientFacts,
    TlsFacts,
    TlsState,
    decide,
)

pytestmark = pytest.mark.hipaa("164.522(b)")

MEETS = TlsFacts(TlsState.MEETS, "verified certificate for mx.x.example, TLSv1.3")
KEY = KeyFact("ABCDEF0123456789ABCDEF", "wkd", True)
CONSENT = PlainConsent("pln_1", "2026-12-01T10:00:00+00:00", "staff")


def test_preference_overrides_method_portal_only_beats_verified_tls_and_a_key() -> None:
    pref = CommsPreference(("cmp_1",), portal_only=True)
    facts = RecipientFacts("p@x.example", pgp=(KEY,), tls=MEETS, preference=pref)
    decision = decide(Policy(), DlpFacts(), facts)
    assert decision.method is Method.PORTAL
    assert (
        "only through" in decision.reason and "cmp_1" in decision.reason and "164.522(b)" in decision.reason
    )
    assert decision.deliver_to is None and decision.sms


def test_portal_only_outranks_the_patients_own_plain_request() -> None:
    pref = CommsPreference(("cmp_1",), portal_only=True)
    facts = RecipientFacts("p@x.example", tls=MEETS, plain=CONSENT, preference=pref)
    assert decide(Policy(), DlpFacts(), facts).method is Method.PORTAL


def test_portal_only_when_policy_forbids_the_portal_sends_nothing() -> None:
    pref = CommsPreference(("cmp_1",), portal_only=True)
    decision = decide(
        Policy(forbidden=frozenset({Method.PORTAL})),
        DlpFacts(),
        RecipientFacts("p@x.example", tls=MEETS, preference=pref),
    )
    assert decision.method is None and decision.code == "no_method" and "portal only" in decision.reason


def test_redirect_goes_to_the_alternative_encrypted_or_by_portal_never_tls_alone() -> None:
    pref = CommsPreference(("cmp_2",), redirect_to="alt@y.example")
    with_key = decide(Policy(), DlpFacts(), RecipientFacts("p@x.example", pgp=(KEY,), preference=pref))
    assert with_key.method is Method.PGP and with_key.deliver_to == "alt@y.example"
    assert "redirected to alt@y.example" in with_key.reason and "cmp_2" in with_key.reason
    no_key = decide(Policy(), DlpFacts(), RecipientFacts("p@x.example", tls=MEETS, preference=pref))
    assert no_key.method is Method.PORTAL and no_key.deliver_to == "alt@y.example"


def test_redirect_with_nothing_allowed_is_held_not_sent_to_the_original() -> None:
    pref = CommsPreference(("cmp_2",), redirect_to="alt@y.example")
    policy = Policy(forbidden=frozenset({Method.PORTAL}))
    decision = decide(policy, DlpFacts(), RecipientFacts("p@x.example", tls=MEETS, preference=pref))
    assert decision.method is None and "redirected to alt@y.example" in decision.reason


def test_no_sms_keeps_the_method_and_turns_the_text_off() -> None:
    pref = CommsPreference(("cmp_3",), no_sms=True)
    decision = decide(Policy(force_portal=True), DlpFacts(), RecipientFacts("p@x.example", preference=pref))
    assert decision.method is Method.PORTAL and decision.sms is False and "no SMS" in decision.reason
    tls = decide(Policy(), DlpFacts(), RecipientFacts("p@x.example", tls=MEETS, preference=pref))
    assert tls.method is Method.TLS and tls.sms is False


def test_a_dlp_hold_still_outranks_every_preference() -> None:
    pref = CommsPreference(("cmp_1",), portal_only=True, redirect_to="alt@y.example")
    held = decide(
        Policy(), DlpFacts(True, DlpAction.QUARANTINE, "ssn"), RecipientFacts("p@x.example", preference=pref)
    )
    assert held.method is None and held.code == "held"


def test_combined_portal_only_and_redirect_sends_the_notice_to_the_alternative() -> None:
    pref = CommsPreference(("cmp_1", "cmp_2"), portal_only=True, redirect_to="alt@y.example")
    decision = decide(Policy(), DlpFacts(), RecipientFacts("p@x.example", pgp=(KEY,), preference=pref))
    assert decision.method is Method.PORTAL and decision.deliver_to == "alt@y.example"
