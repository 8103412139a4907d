"""TOTP (RFC 6238) checked with pyotp as the independent authenticator."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp

from sealmail.users import totp

NOW = datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC)


def test_a_code_from_an_authenticator_matches_its_step() -> None:
    secret = totp.new_secret()
    code = pyotp.TOTP(secret).at(NOW)
    assert totp.matching_step(secret, code, NOW, None) == int(NOW.timestamp()) // 30


def test_one_step_of_drift_either_way_is_accepted_two_are_not() -> None:
    secret = totp.new_secret()
    auth = pyotp.TOTP(secret)
    assert totp.matching_step(secret, auth.at(NOW - timedelta(seconds=30)), NOW, None) is not None
    assert totp.matching_step(secret, auth.at(NOW + timedelta(seconds=30)), NOW, None) is not None
    assert totp.matching_step(secret, auth.at(NOW - timedelta(seconds=90)), NOW, None) is None


def test_a_code_works_once_replay_of_the_same_step_is_refused() -> None:
    secret = totp.new_secret()
    code = pyotp.TOTP(secret).at(NOW)
    step = totp.matching_step(secret, code, NOW, None)
    assert step is not None
    assert totp.matching_step(secret, code, NOW, step) is None


def test_malformed_codes_are_refused() -> None:
    secret = totp.new_secret()
    for bad in ["", "12345", "1234567", "abcdef", "12 34 5x"]:
        assert totp.matching_step(secret, bad, NOW, None) is None
    spaced = pyotp.TOTP(secret).at(NOW)
    assert totp.matching_step(secret, f"{spaced[:3]} {spaced[3:]}", NOW, None) is not None


def test_provisioning_uri_carries_secret_issuer_and_account() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "owner@clinic.example")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    q = parse_qs(parts.query)
    assert q["secret"] == [secret] and q["issuer"] == ["Sealmail"]
    assert "owner%40clinic.example" in parts.path or "owner@clinic.example" in parts.path
    assert totp.grouped(secret).replace(" ", "") == secret
    assert len(secret) == 32  # 160 bits


def test_recovery_codes_are_distinct_and_normalize_for_typing() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == totp.RECOVERY_CODES
    assert totp.normalize_recovery(codes[0].upper().replace("-", " - ")) == codes[0].replace("-", "")
