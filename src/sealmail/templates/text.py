"""A readable plain-text part from HTML, for templates that give only HTML.

Mail clients that show the text part (and screen readers, and spam filters comparing
the parts) should get the same words in the same order: paragraphs separated by blank
lines, list items marked, and each link written as ``text (url)`` so the URL survives.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from sealmail.domain.html_feed import feed_document

# Tags whose contents are never shown to a reader.
_HIDDEN = frozenset({"head", "style", "script", "title", "template", "noscript"})
# Blocks that start on a fresh paragraph (a blank line before and after).
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "ul", "ol", "dl", "hr"}
)
# Blocks that start on a new line without a blank line.
_LINE = frozenset({"div", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "address"})
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"})
_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_URL_SCHEMES = ("http://", "https://", "mailto:", "tel:")


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._pre = 0
        self._breaks = 0  # newlines owed before the next text (the maximum requested wins)
        self._links: list[tuple[str | None, int]] = []
        self._lists: list[list[int]] = []  # per open list: [counter] (-1 for unordered)

    # -- output helpers -----------------------------------------------------------------------
    def _want(self, newlines: int) -> None:
        if self.parts:  # no leading blank lines at the top of the text
            self._breaks = max(self._breaks, newlines)

    def _emit(self, text: str) -> None:
        if self._breaks:
            self.parts.append("\n" * self._breaks)
            self._breaks = 0
        self.parts.append(text)

    def _ends_in_space(self) -> bool:
        return not self.parts or self.parts[-1][-1:] in (" ", "\n") or self._breaks > 0

    # -- parser callbacks ---------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
            return
        if self._hidden:
            return
        nested_list = tag in ("ul", "ol") and bool(self._lists)
        if tag in _PARAGRAPH and not nested_list:
            self._want(2)
        elif tag in _LINE or nested_list:
            self._want(1)
        if tag == "br":
            self._emit("\n")
        elif tag == "hr":
            self._emit("-" * 20)
            self._want(2)
        elif tag in ("ul", "ol"):
            self._lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            depth = max(len(self._lists), 1)
            counter = self._lists[-1] if self._lists else [-1]
            if counter[0] >= 0:
                counter[0] += 1
                marker = f"{counter[0]}. "
            else:
                marker = "- "
            self._emit("  " * (depth - 1) + marker)
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.parts)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._emit(alt if self._ends_in_space() else " " + alt)
        elif tag in ("td", "th") and not self._ends_in_space():
            self._emit(" ")
        elif tag == "pre":
            self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(self._hidden - 1, 0)
            return
        if self._hidden:
            return
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.parts[start:]).strip()
            self._link_suffix(href, label)
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
            if self._lists:  # a nested list ends inside its parent item: no blank line
                self._want(1)
                return
        elif tag == "pre":
            self._pre = max(self._pre - 1, 0)
        if tag in _PARAGRAPH:
            self._want(2)
        elif tag in _LINE:
            self._want(1)

    def _link_suffix(self, href: str | None, label: str) -> None:
        if not href:
            return
        href = href.strip()
        # In-page anchors and javascript: links mean nothing in plain text.
        if not href.lower().startswith(_URL_SCHEMES):
            return
        shown = href[7:] if href.lower().startswith("mailto:") else href
        if label in (href, shown):
            if not label:
                self._emit(shown)
            return
        self._emit(f" ({shown})" if label else shown)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._pre:
            self._emit(data)
            return
        text = _SPACE.sub(" ", data)
        if self._ends_in_space():
            text = text.lstrip(" ")
        if text:
            self._emit(text)


def html_to_text(html: str) -> str:
    """Plain text for ``html``: paragraphs, list markers and ``text (url)`` links kept."""
    builder = _TextBuilder()
    feed_document(builder, html)  # linear whatever the markup (html_feed.py)
    lines = [line.rstrip() for line in "".join(builder.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
