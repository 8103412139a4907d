"""What one render of a tenant's template may spend: steps, time and the size of any value.

The Jinja sandbox stops a template from reaching Python internals, not from spending: a
loop inside a loop over ``range(100000)`` spins a core for hours, ``'x' * 3000000000`` or
``x|center(3000000000)`` asks for gigabytes in one operation, and a ``namespace`` value
doubled forty times needs a terabyte.  The output limits in ``render.py`` see none of these
in time, because the work happens before anything is written out.  So the environment
(``BoundedSandbox``):

* counts a **step** for every loop iteration, call and filter, and stops a render after
  ``MAX_STEPS`` of them or ``MAX_SECONDS`` (whichever first; the clock is read every
  ``CLOCK_EVERY`` steps, and no single step can take long, below);
* checks **before** an operation whose result can be far larger than its operands (``*``,
  ``**``, ``%`` formatting, ``center``, ``join``, ``replace``, ``indent``, ``batch``,
  ``str.ljust`` and kin, ``str.format``) that the result stays under ``MAX_VALUE_CHARS``
  (``MAX_INT_BITS`` for integers), and **after** the rest (``+``, ``~``) that it did;
* refuses a template nested deeper than the parser can follow (``compile_problem``).

A refusal is ``BudgetExceeded``: ``render.py`` reports it as that recipient's failure, with
no value quoted.  Steps and the clock only count inside ``Budget.running``, so templates
compiled but never rendered (saving one) are checked for size only.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from jinja2 import Template, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

# Per render (every part of one recipient's message).  A generous real template (a table of
# a few hundred lab results with filters on each cell) takes a few thousand steps.
MAX_STEPS: Final = 1_000_000
MAX_SECONDS: Final = 2.0
CLOCK_EVERY: Final = 256
# The largest value a template may build: the largest part it may render (render.py).
MAX_VALUE_CHARS: Final = 5_000_000
MAX_INT_BITS: Final = 100_000
# A field width or precision in ``%`` or ``str.format`` (a page is not 10,000 columns wide).
MAX_FORMAT_WIDTH: Final = 10_000

_FORMAT_NUMBERS = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_FIELD = re.compile(r"\{[^{}]*\}|\{[^{}]*\{")


class BudgetExceeded(Exception):
    """A render (or one of its operations) would spend more than a template may."""


class Budget:
    """The steps and the time left to one render."""

    __slots__ = ("deadline", "steps")

    def __init__(self, steps: int = MAX_STEPS, seconds: float = MAX_SECONDS) -> None:
        self.steps = steps
        self.deadline = time.monotonic() + seconds

    @contextlib.contextmanager
    def running(self) -> Iterator[Budget]:
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


def step() -> None:
    budget = _current.get()
    if budget is None:
        return
    budget.steps -= 1
    if budget.steps < 0:
        raise BudgetExceeded(f"the template took more than {MAX_STEPS} steps (loops, calls and filters)")
    if budget.steps % CLOCK_EVERY == 0 and time.monotonic() > budget.deadline:
        raise BudgetExceeded(f"the template took longer than {MAX_SECONDS:g} s to render")


def _too_large(what: str) -> BudgetExceeded:
    return BudgetExceeded(f"{what} would be larger than a template may build ({MAX_VALUE_CHARS} characters)")


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise BudgetExceeded(f"a number would be larger than {MAX_INT_BITS} bits")


def sized(value: Any) -> Any:
    """``value`` if it is within the limits, else ``BudgetExceeded``."""
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_VALUE_CHARS:
        raise _too_large("a value")
    if (n := _whole(value)) is not None:
        _check_bits(n.bit_length())
    return value


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_width(width: Any, what: str) -> None:
    if (n := _whole(width)) is not None and n > MAX_VALUE_CHARS:
        raise _too_large(what)


def check_percent_format(template: Any) -> None:
    """``template % args``: no ``*`` width (taken from the arguments) and no huge width."""
    if not isinstance(template, str):
        return
    for match in _FORMAT_NUMBERS.finditer(template):
        for number in match.groups():
            if number == "*" or (number is not None and int(number) > MAX_FORMAT_WIDTH):
                raise BudgetExceeded(f"a format width over {MAX_FORMAT_WIDTH} is refused in a template")


def check_brace_format(template: str) -> None:
    """``str.format``: no nested field (a width from the arguments) and no huge width."""
    for field in _BRACE_FIELD.findall(template):
        if field.endswith("{") and not field.startswith("{{"):
            raise BudgetExceeded("a nested format field is refused in a template")
        spec = field.partition(":")[2]
        if any(int(n) > MAX_FORMAT_WIDTH for n in re.findall(r"\d+", spec)):
            raise BudgetExceeded(f"a format width over {MAX_FORMAT_WIDTH} is refused in a template")


def check_binop(op: str, left: Any, right: Any) -> None:
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            n = _whole(times)
            if n is not None and isinstance(seq, str | bytes | list | tuple):
                if len(seq) * max(n, 0) > MAX_VALUE_CHARS:
                    raise _too_large("a repeated value")
                return
        a, b = _whole(left), _whole(right)
        if a is not None and b is not None:
            _check_bits(a.bit_length() + b.bit_length())
    elif op == "**":
        base, exp = _whole(left), _whole(right)
        if base is not None and exp is not None and exp > 0 and abs(base) > 1:
            _check_bits(base.bit_length() * exp)
    elif op == "%":
        check_percent_format(left)


_BINOPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


class _Counted:
    """An iterable whose every item costs a step (the body of a ``for`` over it)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Iterable[Any]) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[Any]:
        for item in self.inner:
            step()
            yield item


# Filters whose result can outgrow their input, and what to check first.
def _pre_center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    check_width(width, "a centred value")


def _pre_indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    pad = len(width) if isinstance(width, str) else (_whole(width) or 0)
    lines = str(value).count("\n") + 1
    if lines * pad + len(str(value)) > MAX_VALUE_CHARS:
        raise _too_large("an indented value")


def _pre_replace(value: Any, old: Any = "", new: Any = "", count: Any = None, *_: Any, **__: Any) -> None:
    text, old_s, new_s = str(value), str(old), str(new)
    hits = text.count(old_s) if old_s else len(text) + 1
    if (n := _whole(count)) is not None and n >= 0:
        hits = min(hits, n)
    if len(text) + hits * len(new_s) > MAX_VALUE_CHARS:
        raise _too_large("a replaced value")


def _pre_batch(value: Any, linecount: Any = 1, *_: Any, **__: Any) -> None:
    check_width(linecount, "a batch")


def _pre_format(value: Any, *_: Any, **__: Any) -> None:
    check_percent_format(value)


def _pre_sum(iterable: Any, *_: Any, **kwargs: Any) -> None:
    if not isinstance(kwargs.get("start", 0), int | float):
        raise BudgetExceeded("sum adds numbers in a template")


_PRE_FILTER: Final[dict[str, Callable[..., None]]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "replace": _pre_replace,
    "batch": _pre_batch,
    "slice": _pre_batch,
    "format": _pre_format,
    "sum": _pre_sum,
}


def _join_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``join`` consumes its iterable; read it once (a step an item) and check the total."""
    value, *rest = args
    items = list(_Counted(value)) if not isinstance(value, str) else list(value)
    sep = rest[0] if rest else kwargs.get("d", "")
    total = sum(len(x) if isinstance(x, str) else len(str(x)) for x in items) + len(str(sep)) * len(items)
    if total > MAX_VALUE_CHARS:
        raise _too_large("a joined value")
    return (items, *rest)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    pre = _PRE_FILTER.get(name)
    # Jinja passes context, eval context or environment first to filters marked for it.
    passes = getattr(func, "jinja_pass_arg", None)
    lead = 1 if passes is not None else 0

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        step()
        head, own = args[:lead], args[lead:]
        if name == "join" and own:
            own = _join_args(own, kwargs)
        elif pre is not None and own:
            pre(*own, **kwargs)
        return sized(func(*head, *own, **kwargs))

    return bounded


_STR_WIDTH_METHODS: Final = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if name in _STR_WIDTH_METHODS and args:
        check_width(args[0], "a padded value")
    elif name == "expandtabs":
        size = _whole(args[0] if args else kwargs.get("tabsize", 8)) or 0
        if text.count("\t") * size + len(text) > MAX_VALUE_CHARS:
            raise _too_large("a value with tabs expanded")
    elif name == "replace" and len(args) >= 2:
        _pre_replace(text, *args)
    elif name == "join" and args:
        _join_args((args[0], text), {})
    elif name in ("format", "format_map"):
        check_brace_format(text)
    elif name == "translate":
        raise BudgetExceeded("str.translate is refused in a template")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the budget of this module on every step and value."""

    intercepted_binops = frozenset(_BINOPS)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        # lipsum(n, html, min, max) writes n × max words at once; nothing real needs it.
        self.globals.pop("lipsum", None)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return sized(_BINOPS[operator](left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        step()
        target = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(target, "__name__", ""), args, kwargs)
        return sized(super().call(__context, __obj, *args, **kwargs))

    def compile_bounded(self, source: str) -> Template:
        """``source`` compiled with every loop counted and every ``~`` checked for size."""
        # from_string names the template "<template>" in tracebacks (render.py reads lines).
        return self.from_string(_Budgeted().visit(self.parse(source)))

    @staticmethod
    def counted(iterable: Iterable[Any]) -> _Counted:
        return _Counted(iterable)

    @staticmethod
    def sized(value: Any) -> Any:
        return sized(value)


class _Budgeted(NodeTransformer):
    """Every loop's iterable costs a step an item; every ``~`` is checked for size."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _wrap("counted", node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _wrap("sized", node)


def _wrap(attribute: str, node: nodes.Node) -> nodes.Expr:
    # ``environment.<attribute>(node)``: an environment attribute, which no template can shadow.
    call = nodes.Call(nodes.EnvironmentAttribute(attribute), [node], [], None, None)
    call.set_lineno(node.lineno)
    return call


def compile_problem(exc: BaseException) -> str | None:
    """What to tell the author when compiling failed other than by syntax, or None."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to compile; flatten the template"
    if isinstance(exc, BudgetExceeded):
        return str(exc)
    return None
