"""Message HTML made safe to show: nh3 (ammonia) with an allow-list, plus a strict CSP.

Two independent layers, because either alone has failed somewhere before:

* nh3 keeps only presentational tags and attributes, drops every event handler,
  ``<script>``/``<style>``/``<svg>``/``<math>`` with their content, and every URL scheme
  but http(s) and mailto (so no ``javascript:`` or ``data:`` links);  ``style``
  attributes survive only with the layout and typography properties below — never
  ``background``/``background-image`` (remote tracking) or ``behavior``/``-moz-binding``.
* the document is served with ``Content-Security-Policy: default-src 'none'`` and the
  CSP ``sandbox`` directive without ``allow-scripts`` (see ``web.py``), inside an
  ``<iframe sandbox>``: even markup nh3 missed cannot run script or reach the network,
  and remote images load only after the reader asks.
"""

from __future__ import annotations

import nh3

from sealmail.domain import html_budget

# Shown in place of HTML over the parser budget (mail_view normally keeps such a body out).
TOO_COMPLEX = "<p>This part could not be displayed.</p>"

TAGS: frozenset[str] = frozenset(nh3.ALLOWED_TAGS) - {"area", "map"}
ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "title", "lang", "dir"},
    "a": {"href", "hreflang", "title"},
    "td": {"colspan", "rowspan", "align", "valign", "width", "headers"},
    "th": {"colspan", "rowspan", "align", "valign", "width", "scope", "headers"},
    "table": {"align", "width", "summary", "cellpadding", "cellspacing", "border"},
}
STYLE_PROPERTIES: frozenset[str] = frozenset(
    {
        "color", "font", "font-family", "font-size", "font-style", "font-weight", "line-height",
        "text-align", "text-decoration", "text-transform", "vertical-align", "white-space",
        "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
        "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
        "border", "border-top", "border-right", "border-bottom", "border-left",
        "border-collapse", "border-color", "border-style", "border-width", "border-radius",
        "width", "max-width", "min-width", "height", "display", "background-color",
    }
)  # fmt: skip
# Removed with their content: their text is code or markup, never a reader's content.
DROP_WITH_CONTENT = frozenset({"script", "style", "svg", "math", "template", "noscript", "iframe", "object"})
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# nh3 filters CSS property *names*; these value fragments are refused as well: legacy IE
# ``expression()``, any ``url()`` fetch, escapes that could spell either, imports.
_BAD_CSS_VALUES = ("expression", "url(", "javascript:", "\\", "@import", "behavior", "binding", "/*")


def _style_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute != "style":
        return value
    kept = []
    for declaration in value.split(";"):
        squashed = "".join(declaration.lower().split())
        if declaration.strip() and not any(bad in squashed for bad in _BAD_CSS_VALUES):
            kept.append(declaration.strip())
    return ";".join(kept) or None


def clean_html(html: str) -> str:
    """Sanitize an email's HTML body for display in the portal."""
    if not html_budget.fits(html):
        # html5ever's cost grows steeply with nesting (issue 11.2): never hand it a bomb.
        return TOO_COMPLEX
    return nh3.clean(
        html,
        tags=set(TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes=ATTRIBUTES,
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(STYLE_PROPERTIES),
        attribute_filter=_style_filter,
        link_rel="noopener noreferrer",
        # Links open outside the sandboxed frame, in a new browsing context.
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def has_remote_images(cleaned: str) -> bool:
    """Whether asking to "load images" would change anything (a cheap, safe over-estimate)."""
    return "<img" in cleaned
