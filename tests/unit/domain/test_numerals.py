"""Numbers from the outside world's text: ASCII digits only, never int()'s exceptions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sealmail.domain.numerals import ascii_digits, exceeds, saturating, whole_number, within

# Digits to str.isdigit that are no ASCII digits: int() refuses the superscript and the
# circled one, and reads the Arabic-Indic and fullwidth ones as numbers.
NOT_ASCII = ["²", "①", "٣", "１２", "1²", "𝟗"]
NOT_NUMBERS = ["", " 1", "1 ", "+1", "-1", "1.0", "1e3", "0x10", "1_000", *NOT_ASCII]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_only_ascii_digits_are_a_number(text: str) -> None:
    assert not ascii_digits(text)
    assert whole_number(text) is None
    assert saturating(text, 10) is None
    assert not exceeds(text, 10)
    assert not within(text, 10)


def test_numbers_are_read_and_long_ones_saturate() -> None:
    assert whole_number("0042") == 42
    assert whole_number("9" * 18) == int("9" * 18)
    assert whole_number("9" * 19) is None  # past BIGINT: no count we keep
    huge = "9" * 5000  # int() refuses past 4,300 digits
    assert saturating(huge, 1000) == 1000
    assert saturating("0" * 5000 + "7", 1000) == 7  # leading zeros are no size
    assert exceeds(huge, 10**9) and not within(huge, 10**9)
    assert exceeds("11", 10) and not exceeds("10", 10)
    assert within("10", 10) and not within("11", 10)


def test_no_module_reads_a_number_with_isdigit() -> None:
    """The class, closed: ``str.isdigit`` before ``int``/``float`` is how "²" became a 500.
    What remains counts digits or checks ASCII first, each for a reason given here."""
    allowed = {
        "domain/numerals.py": "the one reader, ASCII checked first",
        "dlp/detectors.py": "counts digits and checks NPI/DEA numbers after isascii()",
        "web/problems.py": "pydantic's own error locations, not input",
        "domain/smtp_replies.py": "the catalogue's constant names",
        "client/_core.py": "the separate client library (imports nothing of the server); isascii() first",
    }
    root = Path(__file__).resolve().parents[3] / "src" / "sealmail"
    found = {
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"\.isdigit\(\)", path.read_text(encoding="utf-8"))
    }
    assert found <= set(allowed), f"read numbers with domain/numerals.py: {sorted(found - set(allowed))}"
