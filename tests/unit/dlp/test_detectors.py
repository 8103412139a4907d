"""PHI detectors: checksums, structure, context windows, tenant-pattern safety, linear time."""

from __future__ import annotations

import re
import time

import pytest

from sealmail.dlp.detectors import (
    BUILTIN_NAMES,
    DeaDetector,
    Detector,
    DobDetector,
    Icd10Detector,
    KeywordDetector,
    MbiDetector,
    MemberIdDetector,
    MrnDetector,
    NpiDetector,
    Span,
    SsnDetector,
    TenantPatternError,
    address_in_context,
    build_detectors,
    compile_tenant_pattern,
    count_all,
    dea_valid,
    icd10cm_plausible,
    luhn_valid,
    mbi_valid,
    npi_valid,
    phone_in_context,
    ssn_valid,
)


def hits(detector: Detector, text: str) -> int:
    return sum(1 for _ in detector.spans(text))


# ------------------------------------------------------------------------------------ checksums


def test_npi_check_digit_follows_cms_luhn_with_80840_prefix() -> None:
    # CMS's worked example in "Requirements for the NPI check digit": 123456789 -> check 3.
    assert npi_valid("1234567893")
    assert not npi_valid("1234567890")
    assert luhn_valid("808401234567893")
    # NPIs begin with 1 or 2; a Luhn-valid number starting with 3 is not an NPI.
    assert not npi_valid("3234567893")
    assert not npi_valid("123456789")


def test_dea_check_digit() -> None:
    # (1 + 3 + 5) + 2 * (2 + 4 + 6) = 33 -> check digit 3.
    assert dea_valid("AB1234563")
    assert not dea_valid("AB1234564")
    assert not dea_valid("AB123456")


@pytest.mark.parametrize(
    ("area", "group", "serial"),
    [
        ("000", "12", "3456"),
        ("666", "12", "3456"),
        ("900", "12", "3456"),
        ("987", "65", "4321"),
        ("512", "00", "3456"),
        ("512", "44", "0000"),
        ("078", "05", "1120"),  # the Woolworth wallet-card number
        ("219", "09", "9999"),  # SSA pamphlet sample
        ("123", "45", "6789"),
        ("111", "11", "1111"),
    ],
)
def test_ssn_never_issued_ranges_and_famous_fakes_are_rejected(area: str, group: str, serial: str) -> None:
    assert not ssn_valid(area, group, serial)


def test_ssn_in_issued_range_is_valid() -> None:
    assert ssn_valid("512", "44", "3321")


def test_mbi_follows_cms_character_positions() -> None:
    assert mbi_valid("1EG4TE5MK73")  # CMS's published sample MBI
    assert not mbi_valid("0EG4TE5MK73")  # position 1 is 1-9
    assert not mbi_valid("1SG4TE5MK73")  # S, L, O, I, B, Z are never used
    assert not mbi_valid("1EG4TE5MKA3")  # position 10 is numeric
    assert not mbi_valid("1EG4TE5MK7")


@pytest.mark.parametrize("code", ["E11.9", "I10", "S52.521A", "Z3A.24", "U07.1", "M1A.0710", "C4A.9"])
def test_icd10cm_shapes_accepted(code: str) -> None:
    assert icd10cm_plausible(code)


@pytest.mark.parametrize("code", ["U50", "U07.5", "E1", "E11.", "E11.12345", "EE1.1", "E1C"])
def test_icd10cm_shapes_rejected(code: str) -> None:
    assert not icd10cm_plausible(code)


# ------------------------------------------------------------------------------------ detectors


def test_ssn_dashed_alone_but_bare_digits_need_a_label() -> None:
    assert hits(SsnDetector(), "on file: 512-44-3321.") == 1
    assert hits(SsnDetector(), "ref 512443321") == 0
    assert hits(SsnDetector(), "SSN 512443321") == 1
    assert hits(SsnDetector(), "social security number 512 44 3321") == 1
    assert hits(SsnDetector(), "Order #512-44-3321 shipped") == 0
    assert hits(SsnDetector(), "SSN 123-45-6789 (sample)") == 0
    # Mixed separators or a longer run of digits are not SSNs.
    assert hits(SsnDetector(), "SSN 512-44 3321") == 0
    assert hits(SsnDetector(), "SSN 512-44-33210") == 0


def test_dob_requires_birth_context_and_counts_only_the_introduced_date() -> None:
    assert hits(DobDetector(), "DOB 03/14/1985, seen 04/05/2024 and 04/06/2024") == 1
    assert hits(DobDetector(), "born on March 4, 1985") == 1
    assert hits(DobDetector(), "Date of birth: 1990-12-25") == 1
    assert hits(DobDetector(), "D.O.B.: 14 Feb 1971") == 1
    assert hits(DobDetector(), "Flu clinic on 10/12/2024") == 0
    assert hits(DobDetector(), "Happy birthday! Cake on 5/6/2025") == 0
    assert hits(DobDetector(), "DOB 13/13/1985") == 0


def test_icd10_needs_clinical_context_not_just_the_shape() -> None:
    assert hits(Icd10Detector(), "Dx: E11.9 type 2 diabetes") == 1
    assert hits(Icd10Detector(), "Assessment: I10 essential hypertension") == 1
    assert hits(Icd10Detector(), "hyperlipidemia (E78.5)") == 1
    assert hits(Icd10Detector(), "Catalogue: part A01.2 hinge bracket") == 0
    assert hits(Icd10Detector(), "patient room B12 and vitamin B12") == 0
    # A bare category needs a coding label; a clinical word is not enough.
    assert hits(Icd10Detector(), "screening for C50 categories") == 0
    # Lower case only right after a coding label.
    assert hits(Icd10Detector(), "dx code k21.9 GERD") == 1
    assert hits(Icd10Detector(), "patient k21.9 notes") == 0


def test_npi_needs_valid_check_digit_and_provider_label() -> None:
    assert hits(NpiDetector(), "Referring NPI 1234567893") == 1
    assert hits(NpiDetector(), "Referring NPI 1234567890") == 0
    assert hits(NpiDetector(), "Reference 1234567893") == 0


def test_dea_needs_check_digit_and_prescribing_context() -> None:
    assert hits(DeaDetector(), "prescriber DEA AB1234563") == 1
    assert hits(DeaDetector(), "prescriber DEA AB1234564") == 0
    assert hits(DeaDetector(), "Coupon AB1234563") == 0


def test_mbi_card_form_alone_bare_form_needs_medicare_label() -> None:
    assert hits(MbiDetector(), "card 1EG4-TE5-MK73") == 1
    assert hits(MbiDetector(), "Medicare MBI 1EG4TE5MK73") == 1
    assert hits(MbiDetector(), "Promo 1EG4TE5MK73") == 0
    assert hits(MbiDetector(), "Medicare 1EG4-TE5MK73") == 0  # inconsistent dashes


def test_member_id_and_mrn_labels_need_digits_in_the_value() -> None:
    assert hits(MemberIdDetector(), "Member ID: XKH448120001") == 1
    assert hits(MemberIdDetector(), "Member ID on the card: YQP123456789") == 1
    assert hits(MemberIdDetector(), "bring your member ID card") == 0
    assert hits(MrnDetector(), "MRN: 00482134") == 1
    assert hits(MrnDetector(), "chart number of visits") == 0


def test_tenant_mrn_pattern_and_label_count_once() -> None:
    detector = MrnDetector((compile_tenant_pattern(r"SFM\d{7}"),))
    assert hits(detector, "see SFM0048213") == 1
    assert hits(detector, "MRN: SFM0048213") == 1
    assert hits(detector, "XSFM00482139") == 0


def test_phone_is_phi_only_in_a_patient_context() -> None:
    assert hits(phone_in_context(), "Patient cell: (555) 234-0147") == 1
    assert hits(phone_in_context(), "Contact mom at 555-210-0131") == 1
    assert hits(phone_in_context(), "Patients can call our front desk at 555-234-0100") == 0
    assert hits(phone_in_context(), "Front desk phone: 555-234-0100") == 0
    assert hits(phone_in_context(), "Patient: A. Sample\nDOB: 1/2/1950\nPhone: 555-234-0147") == 1


def test_address_is_phi_only_in_a_patient_context() -> None:
    assert hits(address_in_context(), "Patient home address: 42 Maple Street") == 1
    assert hits(address_in_context(), "the patient lives at 1187 Oak Hollow Rd") == 1
    assert hits(address_in_context(), "Visit us at 100 Main Street") == 0
    assert hits(address_in_context(), "Our mailing address is 100 Main Street") == 0


def test_keywords_match_whole_words_case_insensitively() -> None:
    detector = KeywordDetector.of(["HIV", "substance use disorder"])
    assert hits(detector, "hiv test; Substance Use Disorder program") == 2
    assert hits(detector, "archive HIVE") == 0
    assert hits(KeywordDetector.of([]), "HIV") == 0


def test_spans_are_offsets_not_values() -> None:
    text = "SSN: 512-44-3321"
    (span,) = SsnDetector().spans(text)
    assert span == Span(5, 16)
    assert all(isinstance(v, int) for v in span)


def test_build_detectors_has_every_stable_name_once() -> None:
    names = [d.name for d in build_detectors()]
    assert tuple(names) == BUILTIN_NAMES
    assert count_all("SSN 512-44-3321, Dx E11.9", build_detectors()) == {"ssn": 1, "icd10": 1}


# ---------------------------------------------------------------------------- tenant patterns


@pytest.mark.parametrize(
    "pattern", [r"SFM\d{7}", r"MRN-\d{6,8}", r"(?i)[A-Z]{2}\d{6,10}", r"(?:\d{3}-){2}\d{4}", r"\d{2}-?\d{5}"]
)
def test_reasonable_tenant_patterns_compile(pattern: str) -> None:
    assert isinstance(compile_tenant_pattern(pattern), re.Pattern)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a+)+$", "unbounded"),
        (r"\d+", "unbounded"),
        (r"\d{3,}", "unbounded"),
        (r"(\d{1,3}){2,5}", "nested"),
        (r"(?:a|ab){1,9}", "nested"),
        (r"(\d)\1{3}", "backreference"),
        (r"(?P<x>\d)(?P=x)", "backreference"),
        (r"\d{1,500}", "exceeds"),
        (r"\d?", "empty"),
        (r"[", "not a valid regular expression"),
        ("A" * 201, "longer than"),
        (r"\w{1,60}\w{1,60}", "too many ways"),
    ],
)
def test_dangerous_or_broken_tenant_patterns_are_rejected_with_a_reason(pattern: str, why: str) -> None:
    with pytest.raises(TenantPatternError, match=why):
        compile_tenant_pattern(pattern)


def test_tenant_pattern_is_anchored_on_alphanumeric_boundaries() -> None:
    compiled = compile_tenant_pattern(r"\d{7}")
    assert compiled.search("call 5552340147") is None
    assert compiled.search("chart 0048213.") is not None


# -------------------------------------------------------------------------------- linear time

ADVERSARIAL = [
    "1" * 200_000,
    "1-" * 100_000,
    "DOB " * 50_000,
    "Patient phone " * 15_000,
    "12 Main " * 25_000,
    "A1" * 100_000,
    "E11.9" * 40_000,
    "Member ID " * 20_000,
    " " * 200_000,
    "1 A " * 50_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:12]))
def test_detectors_stay_fast_on_adversarial_input(text: str) -> None:
    detectors = build_detectors([compile_tenant_pattern(r"[A-Z]{0,3}\d{6,10}")], ["HIV", "oncology"])
    # CPU time, not wall time: a busy machine (parallel tests, other jobs) stretches the
    # latter, while a super-linear pattern costs minutes of CPU here, not a second.
    started = time.process_time()
    count_all(text, detectors)
    assert time.process_time() - started < 3.0
