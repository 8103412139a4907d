"""Autocrypt Level 1 header parsing (autocrypt.org/level1.html §2.1, §2.3)."""

from __future__ import annotations

import base64
import textwrap

import pytest

from sealmail.secureline.autocrypt import (
    AutocryptHeaderError,
    PreferEncrypt,
    is_automatic,
    parse_autocrypt_header,
    select_autocrypt_header,
)

# A real certificate made with gpg 2.2 (ed25519 + cv25519) for Joe Doe <joe.doe@example.org>.
KEYDATA_B64 = (
    "mDMEawamURYJKwYBBAHaRw8BAQdAF0VCnLrryp35Ms6UBzUw5eugSK7U/qKOnn9KfhkoFKK0HUpv"
    "ZSBEb2UgPGpvZS5kb2VAZXhhbXBsZS5vcmc+iJAEExYIADgWIQR7ooJiqicrbJE3pasaudQhDb+A"
    "mwUCawamUQIbAwULCQgHAgYVCgkICwIEFgIDAQIeAQIXgAAKCRAaudQhDb+AmwBPAQCEkr5PKPt+"
    "UsI1ndTHfO8bRv5BhNVgAP7lQni/oTbF2gEAryIU9aJ2emqO1lD+qfjBqVJcMC+gmOL1S8GND2XJ"
    "yg+4OARrBqZREgorBgEEAZdVAQUBAQdAwX7R49FGdd8pdO6z/cUpqibWaMqZ3+GbCwwLwA2iGC0D"
    "AQgHiHgEGBYIACAWIQR7ooJiqicrbJE3pasaudQhDb+AmwUCawamUQIbDAAKCRAaudQhDb+Am7Og"
    "APsHp7wSipvxPHE0QG+EuhNv2w4wn7MEdIINv9GIdKhkOQD/Y43ciAAH0pkU1pvbAIiiYrGpcBzs"
    "Q/JJXjifufVBHw4="
)
KEYDATA = base64.b64decode(KEYDATA_B64)
# As it appears in a message: folded with CRLF + a space every 76 characters.
FOLDED = "\r\n ".join(textwrap.wrap(KEYDATA_B64, 76))


def header(*attributes: str, keydata: str = FOLDED) -> str:
    return "; ".join([*attributes, f"keydata={keydata}"])


def test_a_folded_header_is_parsed() -> None:
    parsed = parse_autocrypt_header(header("addr=joe.doe@example.org", "prefer-encrypt=mutual"))
    assert parsed.addr == "joe.doe@example.org"
    assert parsed.prefer_encrypt is PreferEncrypt.MUTUAL
    assert parsed.keydata == KEYDATA


def test_tabs_and_bare_newlines_in_keydata_are_folding_whitespace() -> None:
    folded = "\n\t".join(textwrap.wrap(KEYDATA_B64, 40))
    assert parse_autocrypt_header(header("addr=joe.doe@example.org", keydata=folded)).keydata == KEYDATA


@pytest.mark.parametrize("value", [None, "nopreference", "MUTUAL", "always"])
def test_prefer_encrypt_other_than_mutual_means_no_preference(value: str | None) -> None:
    attrs = ["addr=joe.doe@example.org"] + ([f"prefer-encrypt={value}"] if value else [])
    # Level 1 §2.1: only the exact value "mutual" counts; "MUTUAL" is no preference.
    assert parse_autocrypt_header(header(*attrs)).prefer_encrypt is PreferEncrypt.NOPREFERENCE


def test_a_header_over_10_kib_is_invalid() -> None:
    padding = "_pad=" + "x" * (10 * 1024)
    with pytest.raises(AutocryptHeaderError, match="10 KiB"):
        parse_autocrypt_header(header("addr=joe.doe@example.org", padding))
    assert (
        select_autocrypt_header([header("addr=joe.doe@example.org", padding)], "joe.doe@example.org") is None
    )


@pytest.mark.parametrize(
    ("auto_submitted", "content_type", "automatic"),
    [
        (None, "text/plain", False),
        ("no", "text/plain", False),
        ("auto-replied", "text/plain", True),
        ("Auto-Generated; owner-email=x@example.org", "text/plain", True),
        (None, "multipart/report", True),
    ],
)
def test_machine_sent_mail_is_recognised(
    auto_submitted: str | None, content_type: str, automatic: bool
) -> None:
    assert is_automatic(auto_submitted, content_type) is automatic


def test_the_address_is_canonicalised_to_lowercase() -> None:
    assert parse_autocrypt_header(header("addr=Joe.Doe@Example.ORG")).addr == "joe.doe@example.org"


def test_unknown_non_critical_attributes_are_ignored() -> None:
    parsed = parse_autocrypt_header(header("addr=joe.doe@example.org", "_venue=somewhere"))
    assert parsed.keydata == KEYDATA


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (header("addr=joe.doe@example.org", "venue=somewhere"), "unknown critical attribute"),
        (header("prefer-encrypt=mutual"), "mandatory"),
        ("addr=joe.doe@example.org", "mandatory"),
        (f"keydata={KEYDATA_B64}; addr=joe.doe@example.org", "last"),
        (header("addr=joe.doe@example.org", "addr=eve@example.org"), "repeated"),
        (header("addr=joe.doe@example.org", keydata="not*base64"), "base64"),
        (header("addr=joe.doe@example.org", keydata=base64.b64encode(b"text").decode()), "OpenPGP"),
        (header("addr=joe.doe@example.org", keydata=""), "OpenPGP"),
        (header("addr=not-an-address"), "email address"),
        (header("addr"), "without a value"),
    ],
)
def test_invalid_headers_are_rejected(value: str, reason: str) -> None:
    with pytest.raises(AutocryptHeaderError, match=reason):
        parse_autocrypt_header(value)


def test_the_header_for_the_sender_is_selected() -> None:
    values = [header("addr=joe.doe@example.org", "prefer-encrypt=mutual")]
    selected = select_autocrypt_header(values, "Joe Doe <Joe.Doe@example.org>")
    assert selected is not None
    assert selected.keydata == KEYDATA


def test_a_header_for_another_address_is_ignored() -> None:
    values = [header("addr=eve@example.org")]
    assert select_autocrypt_header(values, "Joe Doe <joe.doe@example.org>") is None


def test_invalid_headers_do_not_hide_a_valid_one() -> None:
    values = [header("addr=joe.doe@example.org", "critical=1"), header("addr=joe.doe@example.org")]
    assert select_autocrypt_header(values, "joe.doe@example.org") is not None


def test_two_valid_headers_for_the_sender_mean_none() -> None:
    values = [header("addr=joe.doe@example.org"), header("addr=JOE.DOE@example.org")]
    assert select_autocrypt_header(values, "joe.doe@example.org") is None


@pytest.mark.parametrize("from_header", ["joe.doe@example.org, eve@example.org", "", "undisclosed"])
def test_a_message_without_exactly_one_sender_has_no_autocrypt(from_header: str) -> None:
    assert select_autocrypt_header([header("addr=joe.doe@example.org")], from_header) is None


def test_repr_keeps_the_address_out_of_logs() -> None:
    parsed = parse_autocrypt_header(header("addr=joe.doe@example.org"))
    assert "joe.doe" not in repr(parsed)
