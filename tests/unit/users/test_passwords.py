"""Password policy after SP 800-63B §5.1.1.2: length and a refusal list, no composition rules."""

import pytest

from sealmail.users import passwords
from sealmail.users.passwords import Refusal


@pytest.mark.parametrize(
    "common", ["password", "Password1", "123456789", "qwerty123", "Welcome2025", "hipaa123"]
)
def test_common_and_breached_passwords_are_refused_whatever_their_case(common: str) -> None:
    assert passwords.check(common) is Refusal.COMMON
    assert passwords.check(common.upper()) is Refusal.COMMON


def test_no_composition_rules_a_long_lowercase_passphrase_is_accepted() -> None:
    # No digit, no symbol, no capital: SP 800-63B says not to demand them.
    assert passwords.check("correct horse battery staple") is None
    assert passwords.check("tangerine lighthouse") is None


def test_short_and_overlong_passwords_are_refused() -> None:
    assert passwords.check("a7#kQ2") is Refusal.TOO_SHORT
    assert passwords.check("x" * (passwords.MAX_LENGTH + 1)) is Refusal.TOO_LONG
    assert passwords.check("x7" * 32) is None  # 64 characters: SHALL be allowed


def test_the_users_own_email_is_refused_as_context() -> None:
    assert passwords.check("maria.lopez", email="maria.lopez@clinic.example") is Refusal.CONTEXT
    assert passwords.check("maria.lopez2026", email="maria.lopez@clinic.example") is Refusal.CONTEXT
    assert passwords.check("sealmail") is Refusal.CONTEXT


def test_unicode_is_normalized_before_length_and_list_checks() -> None:
    # NFKC folds the fullwidth letters to ASCII "password".
    assert passwords.check("ｐａｓｓｗｏｒｄ") is Refusal.COMMON


def test_the_bundled_list_is_loaded_without_its_comment_lines() -> None:
    words = passwords.common_passwords()
    assert len(words) > 400
    assert not any(w.startswith("#") for w in words)
    assert all(r.text for r in Refusal)
