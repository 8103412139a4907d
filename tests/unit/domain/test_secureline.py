"""The SecureLine decision matrix, exhaustively: keys × certificates × TLS × policy × DLP."""

from __future__ import annotations

import itertools

import pytest

from sealmail.domain.secureline import (
    DlpAction,
    DlpFacts,
    KeyFact,
    Method,
    Policy,
    RecipientFacts,
    TlsFacts,
    TlsState,
    decide,
)

PGP = {
    "none": (),
    "usable": (KeyFact("ABCDEF0123456789ABCDEF0123456789ABCDEF01", "wkd", True),),
    "expired": (
        KeyFact("1111111111111111111111111111111111111111", "uploaded", False, "expired on 2026-01-01"),
    ),
    "revoked": (KeyFact("2222222222222222222222222222222222222222", "uploaded", False, "revoked"),),
    "revoked+usable": (
        KeyFact("2222222222222222222222222222222222222222", "uploaded", False, "revoked"),
        KeyFact("3333333333333333333333333333333333333333", "uploaded", True),
    ),
}
SMIME = {
    "none": (),
    "usable": (KeyFact("AA" * 32, "uploaded", True),),
    "expired": (KeyFact("BB" * 32, "uploaded", False, "expired on 2025-12-31"),),
    "untrusted": (KeyFact("CC" * 32, "harvested", False, "untrusted issuer"),),
}
TLS = {
    "unknown": TlsFacts(),
    "meets": TlsFacts(TlsState.MEETS, "verified certificate for mx1.example.org, TLSv1.3"),
    "fails": TlsFacts(TlsState.FAILS, "MX offers no STARTTLS"),
}
POLICIES = {
    "default": Policy(),
    "forbid_pgp": Policy(forbidden=frozenset({Method.PGP})),
    "smime_first": Policy(order=(Method.SMIME, Method.PGP, Method.TLS, Method.PORTAL)),
    "forbid_portal": Policy(forbidden=frozenset({Method.PORTAL})),
    "force_portal": Policy(force_portal=True),
    "phi_strict": Policy(require_message_encryption_on_phi=True),
    "tls_or_portal": Policy(order=(Method.TLS, Method.PORTAL)),
}
DLP = {
    "clean": DlpFacts(),
    "phi": DlpFacts(True, DlpAction.NONE, "ssn in text"),
    "require_encryption": DlpFacts(True, DlpAction.REQUIRE_ENCRYPTION, "icd10 in subject"),
    "portal_only": DlpFacts(True, DlpAction.PORTAL_ONLY, "mrn in attachment[0]"),
}


def expected(pgp: str, smime: str, tls: str, policy_name: str, dlp: str) -> Method | None:
    """The rule, stated declaratively (the implementation walks it procedurally)."""
    policy = POLICIES[policy_name]
    if policy.force_portal or dlp == "portal_only":
        return None if Method.PORTAL in policy.forbidden else Method.PORTAL
    message_level = dlp == "require_encryption" or (dlp == "phi" and policy.require_message_encryption_on_phi)
    available = {
        Method.PGP: pgp in ("usable", "revoked+usable"),
        Method.SMIME: smime == "usable",
        Method.TLS: not message_level and tls != "fails",
        Method.PORTAL: True,
    }
    for method in policy.order:
        if method not in policy.forbidden and available[method]:
            return method
    return None


CASES = list(itertools.product(PGP, SMIME, TLS, POLICIES, DLP))


def test_decision_matrix() -> None:
    """Every combination in one test (1,680 cases; a test each would cost seconds)."""
    failures = []
    for case in CASES:
        try:
            check(*case)
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")
    assert not failures, f"{len(failures)} cases wrong, first: {failures[:5]}"


def check(pgp: str, smime: str, tls: str, policy: str, dlp: str) -> None:
    facts = RecipientFacts("pat@example.org", PGP[pgp], SMIME[smime], TLS[tls])
    decision = decide(POLICIES[policy], DLP[dlp], facts)
    assert decision.method == expected(pgp, smime, tls, policy, dlp)
    assert decision.reason
    if decision.method is not None:
        assert decision.reason.startswith(f"{decision.method}:")
        assert decision.method not in POLICIES[policy].forbidden
    if decision.method in (Method.PGP, Method.SMIME):
        assert decision.key is not None and decision.key.usable
    if decision.method is Method.TLS:
        assert tls != "fails"
        assert dlp != "require_encryption"


def test_matrix_is_large_enough_to_cover_every_combination() -> None:
    assert len(CASES) == 5 * 4 * 3 * 7 * 4


def test_pgp_reason_names_the_key_and_where_it_came_from() -> None:
    d = decide(Policy(), DlpFacts(), RecipientFacts("a@b.example", PGP["usable"]))
    assert d.reason == "pgp: key 0xABCDEF0123456789… from WKD"


def test_tls_reason_carries_the_verified_destination() -> None:
    d = decide(Policy(), DlpFacts(), RecipientFacts("a@b.example", tls=TLS["meets"]))
    assert d.reason == "tls: verified certificate for mx1.example.org, TLSv1.3"


def test_portal_reason_says_why_tls_was_not_enough() -> None:
    d = decide(Policy(), DlpFacts(), RecipientFacts("a@b.example", tls=TLS["fails"]))
    assert d.method is Method.PORTAL
    assert d.reason == "portal: MX offers no STARTTLS"


def test_phi_with_strict_policy_explains_the_portal() -> None:
    d = decide(Policy(require_message_encryption_on_phi=True), DLP["phi"], RecipientFacts("a@b.example"))
    assert d.method is Method.PORTAL
    assert "DLP found ssn in text" in d.reason


def test_expired_key_is_explained_when_nothing_else_is_allowed() -> None:
    policy = Policy(order=(Method.PGP,))
    d = decide(policy, DlpFacts(), RecipientFacts("a@b.example", PGP["expired"]))
    assert d.method is None
    assert "expired on 2026-01-01" in d.reason


@pytest.mark.parametrize("action", [DlpAction.BLOCK, DlpAction.QUARANTINE])
def test_blocked_or_quarantined_messages_are_never_sent(action: DlpAction) -> None:
    d = decide(Policy(), DlpFacts(True, action, "ssn in text"), RecipientFacts("a@b.example", PGP["usable"]))
    assert d.method is None


def test_a_policy_listing_a_method_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Policy(order=(Method.TLS, Method.TLS))


def test_undeliverable_decisions_carry_a_stable_code() -> None:
    no_portal = Policy(forbidden=frozenset({Method.PORTAL}))
    tls_fails = decide(no_portal, DlpFacts(), RecipientFacts("a@b.example", tls=TLS["fails"]))
    assert (tls_fails.method, tls_fails.code) == (None, "tls_required")
    strict = decide(no_portal, DLP["require_encryption"], RecipientFacts("a@b.example", tls=TLS["meets"]))
    assert (strict.method, strict.code) == (None, "encryption_required")
    held = decide(Policy(), DlpFacts(True, DlpAction.BLOCK, "ssn in text"), RecipientFacts("a@b.example"))
    assert held.code == "held"


def test_fallback_to_the_portal_names_the_unusable_key() -> None:
    # Issue 12: "OpenPGP key 0x… expired 2026-01-02 → portal", not a bare "S/MIME: no key known".
    facts = RecipientFacts("a@b.example", PGP["expired"], tls=TLS["fails"])
    d = decide(Policy(), DlpFacts(), facts)
    assert d.method is Method.PORTAL
    assert d.reason == "portal: MX offers no STARTTLS; OpenPGP key 0x1111111111111111… expired on 2026-01-01"


def test_fallback_to_tls_names_the_unusable_keys() -> None:
    smime_revoked = (KeyFact("CC" * 32, "harvested", False, "expired on 2026-02-01"),)
    facts = RecipientFacts("a@b.example", PGP["expired"], smime_revoked, TLS["meets"])
    d = decide(Policy(), DlpFacts(), facts)
    assert d.method is Method.TLS
    assert d.reason == (
        "tls: verified certificate for mx1.example.org, TLSv1.3; "
        "OpenPGP key 0x1111111111111111… expired on 2026-01-01; "
        "S/MIME key 0xCCCCCCCCCCCCCCCC… expired on 2026-02-01"
    )


def test_smime_chosen_over_an_unusable_pgp_key_says_so() -> None:
    smime_ok = (KeyFact("DD" * 32, "uploaded", True),)
    d = decide(Policy(), DlpFacts(), RecipientFacts("a@b.example", PGP["expired"], smime_ok))
    assert d.method is Method.SMIME
    assert d.reason.endswith("; OpenPGP key 0x1111111111111111… expired on 2026-01-01")


def test_send_securely_never_settles_for_tls_alone() -> None:
    facts = RecipientFacts("p@example.net", tls=TlsFacts(TlsState.MEETS, "verified, TLSv1.3"))
    assert decide(Policy(), DlpFacts(), facts).method is Method.TLS
    chosen = decide(Policy(message_level_only=True), DlpFacts(), facts)
    assert chosen.method is Method.PORTAL
    assert "the sender chose to send securely" in chosen.reason
