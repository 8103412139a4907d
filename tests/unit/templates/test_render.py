"""Rendering in the sandbox: escaping, strict variables, sandbox refusals, CSS, text part."""

from __future__ import annotations

import pytest

from sealmail.errors import ValidationFailed
from sealmail.templates.render import Compiled, Rendered, RenderFailure, Source


def render(source: Source, **variables: object) -> Rendered:
    result = Compiled(source).render(variables)
    assert isinstance(result, Rendered), result
    return result


def fail(source: Source, **variables: object) -> RenderFailure:
    result = Compiled(source).render(variables)
    assert isinstance(result, RenderFailure), result
    return result


def test_variables_in_html_are_escaped_so_markup_in_data_cannot_inject_script() -> None:
    out = render(
        Source("Hi {{ name }}", '<p title="{{ name }}">Hello {{ name }}</p>'),
        name='<script>alert(1)</script>" onload="x',
    )
    assert out.html is not None
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34; onload=&#34;x" in out.html


def test_subject_and_text_parts_are_not_html_escaped() -> None:
    out = render(Source("Results for {{ name }}", None, "Dear {{ name }},"), name="O'Brien & Co")
    assert out.subject == "Results for O'Brien & Co"
    assert out.text == "Dear O'Brien & Co,"


def test_missing_variable_is_a_failure_naming_the_variable_not_an_empty_string() -> None:
    failure = fail(Source("Hi", "<p>Hello {{ first_name }}</p>"))
    assert failure.field == "template_data"
    assert "'first_name' is undefined" in failure.message
    assert failure.message.startswith("html line 1")


def test_missing_variable_in_a_later_part_fails_the_whole_render() -> None:
    failure = fail(Source("Hi {{ a }}", "<p>{{ a }}</p>", "{{ a }} {{ b }}"), a="x")
    assert failure.message.startswith("text line 1")


def test_default_filter_still_allows_optional_variables() -> None:
    assert render(Source("Hi {{ name | default('there') }}", None, "x")).subject == "Hi there"


@pytest.mark.parametrize(
    "expression",
    [
        "name.__class__",
        "name.__class__.__mro__",
        "''.__class__.__subclasses__()",
        "cycler.__init__.__globals__",
        "'{0.__class__}'.format(name)",
    ],
)
def test_sandbox_refuses_dunder_and_unsafe_attribute_access(expression: str) -> None:
    failure = fail(Source("s", "{{ " + expression + " }}"), name="x")
    assert failure.field == "html"
    assert "sandbox" in failure.message or "undefined" in failure.message


def test_templates_cannot_mutate_their_variables() -> None:
    failure = fail(Source("s", None, "{{ items.append(1) }}"), items=[])
    assert "sandbox" in failure.message


def test_error_from_template_code_reports_its_type_and_line_but_not_the_value() -> None:
    failure = fail(
        Source("s", None, "line one\n{{ secret | int + (1 / zero) }}"), secret="123-45-6789", zero=0
    )
    assert failure.message == "text line 2: ZeroDivisionError while rendering; check template_data types"
    assert "123-45-6789" not in failure.message


def test_runaway_output_is_refused_instead_of_exhausting_memory() -> None:
    failure = fail(Source("s", None, "{% for i in range(99999) %}{{ 'x' * 1000 }}{% endfor %}"))
    assert "longer than" in failure.message


def test_syntax_errors_are_refused_at_compile_time_per_part() -> None:
    with pytest.raises(ValidationFailed) as info:
        Compiled(Source("{{ unclosed", "<p>{% if %}</p>"))
    fields = [e["field"] for e in info.value.extra["errors"]]
    assert fields == ["subject", "html"]


def test_a_template_needs_html_or_text() -> None:
    with pytest.raises(ValidationFailed):
        Compiled(Source("subject only"))


def test_style_rules_are_inlined_and_media_queries_kept() -> None:
    out = render(
        Source(
            "s",
            "<style>p.note{color:#c00} @media (max-width:600px){p{font-size:18px}}</style>"
            '<p class="note">Hi {{ n }}</p>',
        ),
        n="Ana",
    )
    assert out.html is not None
    assert '<p class="note" style="color: #c00;">Hi Ana</p>' in out.html
    assert "@media" in out.html


def test_stylesheet_links_are_never_fetched(tmp_path: object) -> None:
    out = render(Source("s", '<link rel="stylesheet" href="/etc/passwd"><p>x</p>'))
    assert out.html is not None and "passwd" not in out.html


def test_text_part_is_generated_from_rendered_html_when_none_is_given() -> None:
    out = render(
        Source("s", '<p>Hello {{ n }}, <a href="https://portal.example/r/{{ id }}">view results</a></p>'),
        n="Ana",
        id="42",
    )
    assert out.text == "Hello Ana, view results (https://portal.example/r/42)\n"


def test_given_text_part_is_used_instead_of_the_generated_one() -> None:
    out = render(Source("s", "<p>html</p>", "plain {{ n }}"), n=1)
    assert out.text == "plain 1"
