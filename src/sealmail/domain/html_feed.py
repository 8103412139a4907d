"""Feeding a whole document to :class:`html.parser.HTMLParser` in linear time.

``HTMLParser.close()`` is quadratic after a construct that never ends (an unclosed comment,
tag or quoted attribute value): it takes that construct's "<" as text and parses again from
the next character, to the end, once per "<".  A 50 000-character HTML part of ``<a x='``
repeated took 5 s; the 25 MB a message may carry, or the 1 M a template may hold, would
take hours.  And on Python 3.11 a declaration it cannot read (``<![``) raises AssertionError
out of ``_markupbase``.

:func:`feed_document` feeds the document once; ``feed`` stops at the first construct that
never ends.  A short rest is closed as before (the same events as ``feed`` + ``close``); a
long one, or the rest after an unreadable declaration, is handed to ``handle_data`` as it is:
a browser shows none of it as markup, and text scanners (DLP) still read every character.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Final

# ``close`` costs about the square of the rest it re-parses: a few milliseconds at this size.
CLOSE_LIMIT: Final = 2000


def feed_document(parser: HTMLParser, html: str) -> None:
    """``parser.feed(html); parser.close()`` in linear time, never raising on bad markup."""
    try:
        parser.feed(html)
    except AssertionError:
        parser.handle_data(html[_offset(html, parser.getpos()) :])
        return
    rest = parser.rawdata
    if len(rest) > CLOSE_LIMIT:
        parser.rawdata = ""
        parser.handle_data(rest)
        return
    try:
        parser.close()
    except AssertionError:
        pass


def _offset(html: str, pos: tuple[int, int]) -> int:
    """The index of HTMLParser's (line, column) position (lines counted by "\\n" only)."""
    line, column = pos
    at = 0
    for _ in range(line - 1):
        at = html.index("\n", at) + 1
    return at + column
