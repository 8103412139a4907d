"""A cheap, bounded look at an HTML body before any real HTML parser sees it.

html5ever (behind nh3) and the stdlib parser are linear on ordinary mail, but a body of
100,000 nested ``<div>`` or misnested formatting elements makes tree building and
serialization cost tens of seconds (issue 11.2).  One regular-expression pass counts start
tags and the nesting they would build; a body over the budget is never handed to a parser
and the reader gets it as a download instead.

The estimate errs on the safe side: it ignores end tags it cannot match and counts tags
inside comments and scripts, so it may refuse odd markup, never accept a deeper one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A tag name right after "<" or "</"; attributes are never scanned, so a "<" without ">"
# cannot make the pass quadratic.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]{0,40})")

# HTML Living Standard §13.1.2: void elements have no end tag and never nest.  The second
# group closes an open element of the same name (§13.2.6.4.7 "in body" rules for p, li, dd,
# dt, option, tr, td, th), so repeating them builds siblings, not depth.
_NO_DEPTH = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "p", "li", "dd", "dt", "option", "tr", "td", "th",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HtmlLimits:
    """Budget for one HTML body shown in the portal or read by DLP."""

    max_chars: int = 2_000_000
    max_tags: int = 50_000
    max_depth: int = 256


@dataclass(frozen=True, slots=True)
class HtmlCost:
    chars: int
    tags: int
    depth: int

    def within(self, limits: HtmlLimits) -> bool:
        return (
            self.chars <= limits.max_chars and self.tags <= limits.max_tags and self.depth <= limits.max_depth
        )


def measure(html: str, limits: HtmlLimits | None = None) -> HtmlCost:
    """Size, start-tag count and an upper estimate of nesting depth (stops once over budget)."""
    limits = limits or HtmlLimits()
    if len(html) > limits.max_chars:
        return HtmlCost(len(html), 0, 0)
    tags = depth = deepest = 0
    for match in _TAG.finditer(html):
        name = match.group(2).lower()
        if match.group(1):
            depth = max(0, depth - 1) if name not in _NO_DEPTH else depth
            continue
        tags += 1
        if name not in _NO_DEPTH:
            depth += 1
            deepest = max(deepest, depth)
        if tags > limits.max_tags or deepest > limits.max_depth:
            break
    return HtmlCost(len(html), tags, deepest)


def fits(html: str, limits: HtmlLimits | None = None) -> bool:
    """Whether ``html`` is small and shallow enough to hand to an HTML parser."""
    limits = limits or HtmlLimits()
    return measure(html, limits).within(limits)
