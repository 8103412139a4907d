"""The footer check finds unsubscribe links in linear time, with the same elements as before.

The check used ``<a\\b[^>]{0,2000}>(?:(?!</a>).){0,2000}</a>``, which retried up to 2000
characters at every "<a": a template (up to 1 M characters) of "<a>" took about 9 s per
variant, on every campaign save and start.
"""

from __future__ import annotations

import random
import re
import time

from sealmail.marketing.compliance import _has_unsubscribe, anchors

_OLD = re.compile(r"<a\b[^>]{0,2000}>(?:(?!</a>).){0,2000}</a>", re.IGNORECASE | re.DOTALL)


def test_a_template_of_unclosed_anchors_is_checked_in_linear_time() -> None:
    body = "<a>" * 333_333 + '<a href="https://x.test/unsubscribe">Unsubscribe</a>'
    started = time.perf_counter()
    assert _has_unsubscribe("html", body)
    # The old pattern took about 9 s here; the new scan takes milliseconds.
    assert time.perf_counter() - started < 1.5


def test_open_tags_without_a_closing_bracket_are_linear_too() -> None:
    started = time.perf_counter()
    assert not _has_unsubscribe("html", "<a " * 333_333 + "unsubscribe")
    assert time.perf_counter() - started < 1.5


def test_anchors_are_the_elements_the_old_pattern_found() -> None:
    pieces = ["<a", "<A", "<a ", "<ab", ">", "</a>", "</A>", "x", "unsubscribe", "\n", " href='u'", "é"]
    rng = random.Random(20261205)
    for _ in range(3000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40)))
        assert list(anchors(body)) == [m.group(0) for m in _OLD.finditer(body)], body


def test_the_element_bounds_are_kept() -> None:
    long_tag = "<a " + "x" * 2001 + ">unsubscribe</a>"
    long_text = "<a>" + "x" * 2001 + "unsubscribe</a>"
    for body in (long_tag, long_text, "<a>" + "x" * 1990 + "unsubscribe</a>"):
        assert list(anchors(body)) == [m.group(0) for m in _OLD.finditer(body)]
