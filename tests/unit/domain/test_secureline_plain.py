"""SecureLine with a patient's confirmed request for unencrypted mail (164.524(c)(2))."""

from __future__ import annotations

from sealmail.domain.secureline import (
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

CONSENT = PlainConsent("pln_1", "2026-12-01T10:00:00+00:00", "staff")
FAILING = TlsFacts(TlsState.FAILS, "MX offers no STARTTLS")


def test_without_a_request_no_tls_means_portal() -> None:
    decision = decide(Policy(), DlpFacts(), RecipientFacts("p@x.example", tls=FAILING))
    assert decision.method is Method.PORTAL


def test_a_confirmed_request_sends_plain_and_says_so() -> None:
    decision = decide(Policy(), DlpFacts(), RecipientFacts("p@x.example", tls=FAILING, plain=CONSENT))
    assert decision.method is Method.PLAIN
    assert "patient-requested plain" in decision.reason and "pln_1" in decision.reason


def test_the_request_outranks_portal_policies_but_not_a_dlp_hold() -> None:
    facts = RecipientFacts("p@x.example", plain=CONSENT)
    assert decide(Policy(force_portal=True), DlpFacts(), facts).method is Method.PLAIN
    phi = DlpFacts(True, DlpAction.REQUIRE_ENCRYPTION, "ssn in text")
    assert decide(Policy(), phi, facts).method is Method.PLAIN
    held = decide(Policy(), DlpFacts(True, DlpAction.QUARANTINE, "ssn"), facts)
    assert held.method is None and held.code == "held"


def test_a_usable_key_still_encrypts() -> None:
    key = KeyFact("ABCDEF0123456789ABCDEF", "wkd", True)
    decision = decide(Policy(), DlpFacts(), RecipientFacts("p@x.example", pgp=(key,), plain=CONSENT))
    assert decision.method is Method.PGP


def test_plain_in_a_policy_order_is_never_chosen_without_a_request() -> None:
    policy = Policy(order=(Method.PLAIN, Method.TLS, Method.PORTAL))
    assert decide(policy, DlpFacts(), RecipientFacts("p@x.example", tls=FAILING)).method is Method.PORTAL
