"""Tenant DLP policy validation and the scan verdict: actions, thresholds, safe reasons."""

from __future__ import annotations

import pytest

from sealmail.dlp.rules import (
    MAX_PART_CHARS,
    Action,
    DlpPolicy,
    DlpPolicyError,
    Finding,
    TextPart,
    Verdict,
    public_location,
    scan,
)

SSN = "512-44-3321"


def test_actions_order_by_severity_not_alphabet() -> None:
    assert Action.NONE < Action.REQUIRE_ENCRYPTION < Action.PORTAL_ONLY < Action.QUARANTINE < Action.BLOCK
    assert max([Action.BLOCK, Action.NONE, Action.QUARANTINE]) is Action.BLOCK
    assert Action.BLOCK.severity == 4
    assert str(Action.BLOCK) == "block"


def test_clean_message_has_no_findings_and_no_action() -> None:
    verdict = scan([TextPart("subject", "Staff meeting"), TextPart("text", "See you at noon.")], DlpPolicy())
    assert verdict == Verdict((), Action.NONE, "no PHI detected")
    assert not verdict.phi_found


def test_phi_defaults_to_require_encryption_and_names_detector_and_location() -> None:
    parts = [
        TextPart("subject", "Results"),
        TextPart("text", f"SSN {SSN}"),
        TextPart("attachment[0]:jane_doe_labs.pdf", "Dx: E11.9 type 2 diabetes"),
    ]
    verdict = scan(parts, DlpPolicy())
    assert verdict.phi_found
    assert verdict.action is Action.REQUIRE_ENCRYPTION
    assert verdict.findings == (Finding("ssn", "text", 1), Finding("icd10", "attachment[0]", 1))
    assert verdict.reason == "ssn in text; icd10 in attachment[0]"


def test_verdict_never_carries_the_matched_value_or_file_name() -> None:
    parts = [TextPart("text", f"SSN {SSN}, MRN: 00482134"), TextPart("attachment[0]:jane_doe.pdf", SSN)]
    verdict = scan(parts, DlpPolicy(actions={"ssn": Action.BLOCK}))
    rendered = repr(verdict) + str(verdict) + verdict.reason
    for secret in (SSN, "512443321", "00482134", "jane_doe"):
        assert secret not in rendered
    assert SSN not in repr(parts[0])


def test_most_severe_configured_action_wins() -> None:
    policy = DlpPolicy(
        actions={"ssn": Action.BLOCK, "icd10": Action.PORTAL_ONLY}, default_action=Action.QUARANTINE
    )
    assert scan([TextPart("text", "Dx: E11.9 diabetes")], policy).action is Action.PORTAL_ONLY
    assert scan([TextPart("text", f"Dx: E11.9 diabetes, SSN {SSN}")], policy).action is Action.BLOCK
    assert scan([TextPart("text", "MRN: 00482134")], policy).action is Action.QUARANTINE


def test_action_none_records_the_finding_without_acting() -> None:
    verdict = scan([TextPart("text", "Dx: E11.9 diabetes")], DlpPolicy(actions={"icd10": Action.NONE}))
    assert verdict.phi_found
    assert verdict.action is Action.NONE


def test_threshold_counts_across_all_parts() -> None:
    policy = DlpPolicy(thresholds={"phone_in_context": 2})
    one = [TextPart("text", "Patient cell: 555-234-0147")]
    two = [*one, TextPart("html", "Patient cell: 555-234-0148")]
    assert not scan(one, policy).phi_found
    verdict = scan(two, policy)
    assert verdict.findings == (
        Finding("phone_in_context", "text", 1),
        Finding("phone_in_context", "html", 1),
    )
    assert verdict.reason == "phone_in_context in text, html"


def test_unscanned_attachments_raise_the_action_and_appear_in_the_reason() -> None:
    policy = DlpPolicy(unscanned_action=Action.QUARANTINE)
    verdict = scan([TextPart("text", "hello")], policy, unscanned=["attachment[1]:scan_of_chart.jpg"])
    assert verdict.action is Action.QUARANTINE
    assert verdict.unscanned == ("attachment[1]",)
    assert verdict.reason == "not scanned: attachment[1]"
    assert not verdict.phi_found


def test_oversized_part_is_scanned_up_to_the_limit_and_reported() -> None:
    text = f"SSN {SSN} " + "x" * MAX_PART_CHARS + f" SSN {SSN}"
    verdict = scan([TextPart("text", text)], DlpPolicy())
    assert verdict.findings == (Finding("ssn", "text", 1),)
    assert verdict.unscanned == ("text",)


def test_tenant_mrn_patterns_and_keywords_take_effect() -> None:
    policy = DlpPolicy(mrn_patterns=[r"SFM\d{7}"], keywords=["Project Bluebird"])
    verdict = scan([TextPart("text", "SFM0048213 joined project bluebird")], policy)
    assert verdict.detectors == {"mrn", "keyword"}


def test_settings_from_toml_may_use_strings_for_actions() -> None:
    policy = DlpPolicy(actions={"ssn": "block"}, default_action="portal_only")  # type: ignore[dict-item,arg-type]
    assert policy.action_for("ssn") is Action.BLOCK
    assert policy.action_for("dob") is Action.PORTAL_ONLY


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mrn_patterns": [r"SFM\d{7}", r"(\d+)+"]}, r"mrn_patterns\[1\]: unbounded repeat"),
        ({"mrn_patterns": ["("]}, r"mrn_patterns\[0\]: not a valid regular expression"),
        ({"keywords": ["HIV", " "]}, r"keywords\[1\]: empty keyword"),
        ({"keywords": ["x" * 101]}, r"keywords\[0\]: longer than 100"),
        ({"actions": {"ssn_typo": Action.BLOCK}}, r"actions: unknown detector\(s\) \['ssn_typo'\]"),
        ({"actions": {"ssn": "reject"}}, r"actions\[ssn\]: 'reject' is not one of"),
        ({"thresholds": {"ssn": 0}}, r"thresholds\[ssn\]: must be a whole number of at least 1"),
        ({"thresholds": {"dob": True}}, r"thresholds\[dob\]"),
        ({"default_action": "encrypt"}, r"default_action: 'encrypt' is not one of"),
    ],
)
def test_invalid_policy_fails_at_construction_with_a_clear_message(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DlpPolicyError, match=message):
        DlpPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_immutable_after_validation() -> None:
    patterns = [r"SFM\d{7}"]
    policy = DlpPolicy(mrn_patterns=patterns)
    patterns.append(r"(a+)+")
    assert policy.mrn_patterns == (r"SFM\d{7}",)
    with pytest.raises(TypeError):
        policy.actions["ssn"] = Action.BLOCK  # type: ignore[index]


def test_public_location_drops_file_names() -> None:
    assert public_location("attachment[0]:report.pdf") == "attachment[0]"
    assert public_location("attachment[0]:a:b.pdf") == "attachment[0]"
    assert public_location("subject") == "subject"
