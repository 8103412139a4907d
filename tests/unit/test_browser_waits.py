"""Browser tests wait for what they assert: no instantaneous visibility checks.

``Locator.is_visible()`` and ``is_hidden()`` answer for this instant and never wait, so an
assert made on them right after a navigation or a click races the page's own script (CI
once caught the forms preview before ``forms.js`` had hidden its conditional field).
``expect(locator).to_be_visible()`` / ``to_be_hidden()`` retry until the page settles."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
INSTANT = re.compile(r"\.is_(?:visible|hidden)\(\)")


def instant_checks(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if INSTANT.search(line)]


def test_browser_tests_use_retrying_expectations() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{n}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != Path(__file__).name
        for n in instant_checks(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"use expect(locator).to_be_visible()/to_be_hidden(), not is_visible(): {offenders}"


def test_the_check_finds_an_instant_assert() -> None:
    assert instant_checks('x = 1\nassert page.locator("#a").is_hidden()\n') == [2]
    assert instant_checks('expect(page.locator("#a")).to_be_hidden()\n') == []
