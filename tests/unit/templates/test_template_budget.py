"""A tenant's template cannot spend a worker's memory or time (templates/budget.py).

Each case below is one way a template asks for gigabytes in a single operation, grows a
value by doubling, or spins a core; before the budget each took seconds to hours or was
killed by the out-of-memory killer.  Each must now fail that recipient quickly, naming
the limit, while ordinary templates render as before."""

from __future__ import annotations

import time

import pytest

from sealmail.errors import ValidationFailed
from sealmail.templates import budget
from sealmail.templates.render import Compiled, Rendered, RenderFailure, Source

NS_DOUBLING = (
    "{% set ns = namespace(v=START) %}{% for i in range(40) %}{% set ns.v = ns.v OP ns.v %}{% endfor %}"
)

HOSTILE = {
    "str_times_huge": ("{{ 'x' * 3000000000 }}", "larger than"),
    "huge_times_list": ("{{ 3000000000 * [1] }}", "larger than"),
    "power": ("{{ 9 ** 999999999 }}", "bits"),
    "nested_ranges": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "steps",
    ),
    "center_filter": ("{{ 'x'|center(3000000000) }}", "larger than"),
    "percent_filter": ("{{ '%3000000000s'|format(1) }}", "format width"),
    "percent_star": ("{{ '%*s' % (3000000000, 1) }}", "format width"),
    "join_separator": ("{{ range(10)|join('x' * 4000000) }}", "larger than"),
    "ljust_method": ("{{ 'x'.ljust(3000000000) }}", "larger than"),
    "zfill_method": ("{{ 'x'.zfill(3000000000) }}", "larger than"),
    "brace_width": ("{{ '{:>3000000000}'.format(1) }}", "format width"),
    "brace_nested": ("{{ '{:{w}}'.format(1, w=3000000000) }}", "nested format field"),
    "concat_doubling": (NS_DOUBLING.replace("START", "'x'").replace("OP", "~"), "larger than"),
    "list_doubling": (NS_DOUBLING.replace("START", "[1]").replace("OP", "+"), "larger than"),
    "int_squaring": (NS_DOUBLING.replace("START", "3").replace("OP", "*"), "bits"),
    "macro_fanout": (
        "{% macro m(d) %}{% if d %}{{ m(d-1) }}{{ m(d-1) }}{% endif %}{% endmacro %}{{ m(40) }}",
        "s to render",
    ),
    "replace_growth": ("{{ ('x' * 4000000)|replace('x', 'yy') }}", "larger than"),
    "replace_empty": ("{{ ('x' * 1000)|replace('', 'y' * 100000) }}", "larger than"),
    "indent_lines": ("{{ ('\n' * 100000)|indent(1000) }}", "larger than"),
    "batch_fill": ("{{ range(3)|batch(3000000000, 'x') }}", "larger than"),
    "expandtabs": ("{{ ('\t' * 1000000).expandtabs(1000) }}", "larger than"),
    "filter_per_step": ("{% for i in range(100000) %}{{ range(100000)|sum }}{% endfor %}", "s to render"),
    "sum_of_lists": ("{{ ([[1] * 1000] * 5000)|sum(start=[]) }}", "sum adds numbers"),
    "translate": ("{{ 'abc'.translate({97: 'x' * 5000000}) }}", "translate"),
}


@pytest.mark.parametrize("source", [v[0] for v in HOSTILE.values()], ids=list(HOSTILE))
def test_a_hostile_template_fails_its_recipient_quickly_naming_the_limit(source: str) -> None:
    expected = {v[0]: v[1] for v in HOSTILE.values()}[source]
    started = time.monotonic()
    result = Compiled(Source("s", None, source)).render({})
    assert isinstance(result, RenderFailure), result
    assert expected in result.message
    assert time.monotonic() - started < budget.MAX_SECONDS + 3


@pytest.mark.parametrize(
    "source",
    ["{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}", "{% if 1 %}" * 3000 + "{% endif %}" * 3000],
    ids=["parentheses", "blocks"],
)
def test_a_template_nested_past_the_parser_is_refused_when_saved_not_a_crash(source: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        Compiled(Source("s", source))
    assert info.value.extra["errors"] == [
        {"field": "html", "message": "nested too deeply to compile; flatten the template"}
    ]


def test_ordinary_templates_render_as_before() -> None:
    source = Source(
        "Results for {{ name }}",
        "<p>{{ name|title }}</p>{% for r in results %}<p>{{ r.test|upper }} {{ '%.1f'|format(r.value) }}"
        "{{ ' (high)' if r.value > 10 else '' }}</p>{% endfor %}{{ ', '.join(tags) ~ '.' }}"
        "{{ '{:>8}'.format(code) }}{{ 'ab' * 3 }}{{ 2 ** 10 }}{{ range(5)|join('-') }}",
    )
    rendered = Compiled(source).render(
        {
            "name": "pat doe",
            "results": [{"test": "hb", "value": 13.25}, {"test": "k", "value": 4.0}],
            "tags": ["a", "b"],
            "code": "A1",
        }
    )
    assert isinstance(rendered, Rendered), rendered
    assert rendered.html == (
        "<p>Pat Doe</p><p>HB 13.2 (high)</p><p>K 4.0</p>a, b.      A1ababab10240-1-2-3-4"
    )


def test_a_loop_under_the_budget_is_not_cut_short() -> None:
    result = Compiled(
        Source("s", None, "{% for i in range(500) %}{% for j in range(400) %}{% endfor %}{% endfor %}done")
    ).render({})
    assert isinstance(result, Rendered) and result.text == "done"


def test_steps_are_counted_per_render_not_per_template() -> None:
    compiled = Compiled(
        Source("s", None, "{% for i in range(1000) %}{% for j in range(600) %}{% endfor %}{% endfor %}ok")
    )
    for _ in range(3):  # 1.8 M steps in all, 600 k each
        result = compiled.render({})
        assert isinstance(result, Rendered), result
