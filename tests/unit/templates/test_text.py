"""Readable plain text from HTML: paragraphs, lists, links as ``text (url)``."""

from __future__ import annotations

from sealmail.templates.text import html_to_text


def test_paragraphs_and_headings_are_separated_by_blank_lines() -> None:
    assert (
        html_to_text("<h1>Title</h1><p>One   two\nthree</p><p>Four</p>") == "Title\n\nOne two three\n\nFour\n"
    )


def test_links_keep_their_url_after_the_text() -> None:
    got = html_to_text('<p>See <a href="https://x.example/a?b=1&amp;c=2">your results</a>.</p>')
    assert got == "See your results (https://x.example/a?b=1&c=2).\n"


def test_link_whose_text_is_the_url_or_address_is_not_repeated() -> None:
    html = '<a href="https://x.example">https://x.example</a> <a href="mailto:a@x.example">a@x.example</a>'
    assert html_to_text(html) == "https://x.example a@x.example\n"


def test_anchor_and_script_links_are_dropped_but_their_text_kept() -> None:
    assert html_to_text('<a href="#top">Top</a> <a href="javascript:x()">Go</a>') == "Top Go\n"


def test_lists_are_marked_and_nested_lists_indented() -> None:
    html = "<ul><li>One</li><li>Two<ol><li>a</li><li>b</li></ol></li><li>Three</li></ul>"
    assert html_to_text(html) == "- One\n- Two\n  1. a\n  2. b\n- Three\n"


def test_head_style_and_script_are_not_shown() -> None:
    html = (
        "<html><head><title>T</title><style>p{}</style></head><body><script>x</script><p>Hi</p></body></html>"
    )
    assert html_to_text(html) == "Hi\n"


def test_line_breaks_table_rows_and_image_alt_text() -> None:
    html = (
        "<p>a<br>b</p><table><tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></table>"
        '<img alt="Logo">'
    )
    assert html_to_text(html) == "a\nb\n\n1 2\n3 4\n\nLogo\n"


def test_preformatted_text_keeps_its_whitespace() -> None:
    assert html_to_text("<pre>  x\n    y</pre>") == "x\n    y\n"
