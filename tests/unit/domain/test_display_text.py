"""Shown names, subjects, file names and senders cannot mislead (issue 11 §6)."""

from __future__ import annotations

import pytest

from sealmail.domain.display_text import (
    BIDI_CONTROLS,
    safe_display,
    safe_download_name,
    sender_display,
    skeleton,
)
from sealmail.files.http import disposition, filename_from_disposition

RLO = "\u202e"


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
def test_every_bidi_control_is_removed(control: str) -> None:
    assert safe_display(f"invoice{control}fdp.exe") == "invoicefdp.exe"


def test_c0_c1_controls_and_invisibles_are_removed_and_whitespace_collapsed() -> None:
    shown = safe_display("Lab\x00 re\x1bsults\x85\x9b\u200b\ufeff\r\n\tMarch")
    assert shown == "Lab results March"


def test_a_huge_value_is_capped_with_an_ellipsis() -> None:
    shown = safe_display("x" * 10_000_000, max_len=50)
    assert len(shown) == 50 and shown.endswith("…")


def test_legitimate_right_to_left_text_is_kept() -> None:
    assert safe_display("نتائج المختبر") == "نتائج المختبر"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("results\x00.pdf", "results.pdf"),
        (f"invoice{RLO}fdp.exe", "invoicefdp.exe"),
        (".bashrc", "bashrc"),
        ("...", "file"),
        ("", "file"),
        ('a"b<c>:d|e?.txt', "a_b_c__d_e_.txt"),
        ("résultats.pdf", "résultats.pdf"),
    ],
)
def test_download_names_are_one_visible_base_name(given: str, expected: str) -> None:
    assert safe_download_name(given) == expected


def test_a_long_download_name_keeps_its_extension_visible() -> None:
    name = safe_download_name("a" * 10_000_000 + ".exe")
    assert len(name) <= 120 and name.endswith("….exe")


def test_disposition_header_has_no_path_control_or_override_in_either_parameter() -> None:
    header = disposition(f"../../etc/pass\x00wd{RLO}fdp.exe")
    assert "/" not in header.split(";", 1)[1].replace("UTF-8''", "")
    assert "%00" not in header and "%E2%80%AE" not in header.upper() and "\x00" not in header
    assert filename_from_disposition(header) == "passwdfdp.exe"
    assert 'filename="passwdfdp.exe"' in header


def test_disposition_keeps_utf8_in_filename_star_with_an_ascii_fallback() -> None:
    header = disposition("résultats 100%.pdf")
    assert 'filename="r_sultats 100_.pdf"' in header
    assert filename_from_disposition(header) == "résultats 100%.pdf"


def test_display_name_that_is_an_address_shows_the_real_address() -> None:
    view = sender_display("ceo@hospital.test", "attacker@evil.test", "Riverside Clinic")
    assert view.warning and view.show_address and view.address == "attacker@evil.test"


@pytest.mark.parametrize("name", ["ceo＠hospital.test", "ceo (at) hospital.test", "Billing ceo@x.test"])
def test_address_like_display_names_are_flagged(name: str) -> None:
    assert sender_display(name, "a@evil.test", None).warning


@pytest.mark.parametrize(
    "name",
    [
        "Riverside Сlinic",  # Cyrillic Es
        "Rіverside Clinic",  # Cyrillic i
        "Riverside Cl1nic",  # digit one
        "ＲＩＶＥＲＳＩＤＥ ＣＬＩＮＩＣ",  # fullwidth
        "Riverside Clinic\u0301",  # a combining mark
        "Rivеrsidе Clinic Billing",  # look-alike inside a longer name
    ],
)
def test_homoglyphs_of_the_organisation_are_flagged(name: str) -> None:
    view = sender_display(name, "x@evil.test", "Riverside Clinic")
    assert view.warning and "Riverside Clinic" in view.warning


@pytest.mark.parametrize("name", ["Riverside Clinic", "Dr. Lee, Riverside Clinic", "Dr. Lee", ""])
def test_honest_names_are_not_flagged(name: str) -> None:
    assert sender_display(name, "lee@riverside.test", "Riverside Clinic").warning is None


def test_the_name_shown_is_itself_cleaned() -> None:
    view = sender_display(f"Dr. Lee{RLO}\x00", "lee@riverside.test\x07", None)
    assert view.name == "Dr. Lee" and view.address == "lee@riverside.test"


def test_skeleton_collides_latin_cyrillic_and_greek_look_alikes() -> None:
    assert skeleton("Sealmail") == skeleton("Ѕеаlmаil") == skeleton("Sεalmαil")
    assert skeleton("Sealmail") != skeleton("Sealnail")


def test_portal_notice_shows_the_organisation_without_overrides() -> None:
    import email
    import email.policy
    from datetime import UTC, datetime

    from sealmail.domain.portal_notice import build_notice

    notice = build_notice(
        organization=f"Riverside{RLO} Clinic\x00",
        sender="notices@clinic.example",
        recipient="p@example.net",
        link="https://portal.example/p/token",
        expires_at=datetime(2026, 12, 31, tzinfo=UTC),
        message_id_domain="out.example",
        # A policy subject saved before the API refused line breaks in it: one line, not a
        # notice that cannot be built.
        subject_template="Secure mail\r\nBcc: someone@evil.example from {organization}",
    )
    msg = email.message_from_bytes(notice.raw, policy=email.policy.default)
    assert str(msg["From"]).startswith("Riverside Clinic")
    assert msg["Subject"] == "Secure mail Bcc: someone@evil.example from Riverside Clinic" and not msg["Bcc"]
    bodies = [p.get_content() for p in msg.walk() if p.get_content_maintype() == "text"]
    assert bodies and all(RLO not in b and "\x00" not in b for b in bodies)
    assert all("Riverside Clinic" in b for b in bodies)


def test_portal_branding_shows_the_organisation_without_overrides() -> None:
    from sealmail.portal.branding import branding

    assert branding(f"River{RLO}side\x1b Clinic", {}).organization == "Riverside Clinic"
