"""Every HTMLParser in the product reads a document in one linear pass and never raises.

``feed`` + ``close`` re-parsed from every "<" after a construct that never ends: 50 000
characters of ``<a x='`` took 5 s (quadratic), and DLP reads HTML parts of up to 25 MB,
templates hold up to 1 M.  ``<![`` raised AssertionError (Python 3.11 ``_markupbase``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sealmail.dlp.extract import html_to_text as dlp_text
from sealmail.domain.html_feed import CLOSE_LIMIT, feed_document
from sealmail.engagement.instrument import rewrite_html
from sealmail.templates.text import html_to_text as template_text

SRC = Path(__file__).resolve().parents[3] / "src" / "sealmail"
SIZE = 200_000
HOSTILE = {
    "unclosed quoted attribute": "<a x='" * (SIZE // 6),
    "unclosed comments": "<!--" * (SIZE // 4),
    "unclosed tag openings": "<a" * (SIZE // 2),
    "marked sections": "<![" * (SIZE // 3),
}


def _rewrite(html: str) -> object:
    return rewrite_html(html, link_url=lambda url: "https://t.test/c", pixel_url=None)


READERS: dict[str, Callable[[str], object]] = {"dlp": dlp_text, "template": template_text, "links": _rewrite}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
@pytest.mark.parametrize("html", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markup_is_read_in_bounded_time(reader: Callable[[str], object], html: str) -> None:
    started = time.perf_counter()
    reader("<p>before</p>" + html)
    # The quadratic parse took over a minute at this size for the first of these.
    assert time.perf_counter() - started < 3


def test_dlp_still_reads_the_text_after_an_unending_construct() -> None:
    for rest in ("<!-- SSN 512-44-3321 " + "x" * (CLOSE_LIMIT + 1), "<![x SSN 512-44-3321"):
        assert "512-44-3321" in dlp_text("<p>a</p>" + rest)


def test_a_short_rest_is_closed_as_before() -> None:
    class Events(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.seen: list[str] = []

        def handle_data(self, data: str) -> None:
            self.seen.append(data)

    for html in ("<p>a &amp b", "<p>a</p><a x='b", "<!-- c", "<p>x</p>&amp"):
        ours, stdlib = Events(), Events()
        feed_document(ours, html)
        stdlib.feed(html)
        stdlib.close()
        assert "".join(ours.seen) == "".join(stdlib.seen), html


def test_no_module_feeds_an_html_parser_except_through_feed_document() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "html_feed.py"
        and "HTMLParser" in (text := path.read_text(encoding="utf-8"))
        and ".feed(" in text
    ]
    assert offenders == []
