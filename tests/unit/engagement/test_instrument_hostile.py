"""Link rewriting over markup that never ends (timing: tests/unit/domain/test_html_feed.py).

A browser reads everything after an unclosed comment or quoted attribute as part of it, so
no link starts there; the links before it are still tracked, and ``<![`` (AssertionError from
Python 3.11's ``_markupbase``) no longer fails the send.
"""

from __future__ import annotations

from sealmail.engagement.instrument import rewrite_html


def _track(url: str) -> str:
    return "https://t.test/c/1"


def test_links_before_an_unending_construct_are_still_tracked() -> None:
    html = '<a href="https://e.test/a">a</a><!-- never closed <a href="https://e.test/b">b</a>'
    out, changed = rewrite_html(html, link_url=_track, pixel_url=None)
    assert changed
    # The second link is inside the comment for a browser, so it is left as it is.
    assert out == '<a href="https://t.test/c/1">a</a><!-- never closed <a href="https://e.test/b">b</a>'


def test_links_before_an_unreadable_declaration_are_still_tracked() -> None:
    out, changed = rewrite_html('<a href="https://e.test/a">a</a><![x', link_url=_track, pixel_url=None)
    assert changed
    assert out.startswith('<a href="https://t.test/c/1">')
