"""Compiling and rendering templates in the Jinja2 sandbox.

Templates are written by tenants and filled with patient data, so both sides are
untrusted: the sandbox refuses dunder and other unsafe attribute access (no route from
``{{ x.__class__ }}`` to Python internals), the immutable variant stops templates from
mutating the variables, HTML output is autoescaped (a ``<script>`` in a variable arrives as
text), and ``StrictUndefined`` turns a missing variable into an error instead of an empty
string.  Rendering is all-or-nothing per recipient: every part is rendered in full before
anything is returned, and a failure is a value (``RenderFailure``) the caller records,
so a half-rendered message never reaches ``Messages.submit``.  What one render may spend
(steps, seconds, the size of any value it builds) is ``budget.py``'s.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import css_inline
from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from sealmail.errors import ValidationFailed
from sealmail.templates.budget import BoundedSandbox, Budget, BudgetExceeded, compile_problem
from sealmail.templates.text import html_to_text

Part = Literal["subject", "html", "text"]
# A rendered part larger than this is refused: it bounds the memory one recipient's
# render can take (a template looping over ``range`` can otherwise produce gigabytes).
MAX_OUTPUT_CHARS = {"subject": 998, "html": 5_000_000, "text": 2_000_000}
_TEMPLATE_FILENAME = "<template>"


@dataclass(frozen=True, slots=True)
class Source:
    """A template's text, as stored: subject and at least one of html and text."""

    subject: str
    html: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class RenderFailure:
    """Why one recipient's message could not be rendered; names and lines, never values."""

    field: str
    message: str

    def as_error(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def _environment(autoescape: bool) -> BoundedSandbox:
    return BoundedSandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        # No filesystem loader: ``{% include %}`` and ``{% extends %}`` have nothing to
        # load, so a template can never read files or other tenants' templates.
        loader=None,
        keep_trailing_newline=True,
    )


_HTML_ENV = _environment(autoescape=True)
_PLAIN_ENV = _environment(autoescape=False)
_inliners = threading.local()


def _inliner() -> css_inline.CSSInliner:
    # One inliner per thread: bulk sending renders from a thread pool, and the Rust
    # object is not documented as safe to share.
    inliner: css_inline.CSSInliner | None = getattr(_inliners, "value", None)
    if inliner is None:
        # Never fetch stylesheets: a <link> in a tenant's template must not make the server
        # issue requests (SSRF) or read local files.  @media rules stay in a <style> block
        # because they cannot be inlined.
        inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
        _inliners.value = inliner
    return inliner


def inline_css(html: str) -> str:
    """Move <style> rules into style attributes (many mail clients drop <style> blocks)."""
    lowered = html.lower()
    if "<style" not in lowered and "<link" not in lowered:
        return html  # nothing to inline: keep the fragment as written
    return _inliner().inline(html)


def _template_line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so template frames carry the template's own line numbers.
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == _TEMPLATE_FILENAME]
    return lines[-1] if lines else None


def _describe(part: Part, exc: BaseException) -> RenderFailure:
    line = _template_line(exc)
    where = f"{part} line {line}" if line else part
    if isinstance(exc, UndefinedError):
        return RenderFailure("template_data", f"{where}: {exc.message}; add it to template_data")
    if isinstance(exc, SecurityError):
        return RenderFailure(part, f"{where}: refused by the template sandbox: {exc.message}")
    if isinstance(exc, TemplateError):
        return RenderFailure(part, f"{where}: {exc.message}")
    # Other exceptions come from tenant template code running on tenant data (a filter on
    # the wrong type, a division by zero); their text may quote a value, so only the type
    # is reported.
    return RenderFailure(part, f"{where}: {type(exc).__name__} while rendering; check template_data types")


class OutputTooLarge(Exception):
    pass


def _render_part(template: Template, part: Part, variables: Mapping[str, Any]) -> str:
    limit = MAX_OUTPUT_CHARS[part]
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > limit:
            raise OutputTooLarge(f"{part} is longer than {limit} characters once rendered")
        chunks.append(chunk)
    return "".join(chunks)


class Compiled:
    """A template compiled once and rendered for many recipients (thread-safe)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        errors: list[dict[str, str]] = []
        self._subject = self._compile(_PLAIN_ENV, "subject", source.subject, errors)
        self._html = self._compile(_HTML_ENV, "html", source.html, errors)
        self._text = self._compile(_PLAIN_ENV, "text", source.text, errors)
        if source.html is None and source.text is None:
            errors.append({"field": "html", "message": "give html, text or both"})
        if errors:
            raise ValidationFailed(errors)

    @staticmethod
    def _compile(
        env: BoundedSandbox, part: Part, text: str | None, errors: list[dict[str, str]]
    ) -> Template | None:
        if text is None:
            return None
        try:
            # Named "<template>" (_TEMPLATE_FILENAME) in tracebacks.
            return env.compile_bounded(text)
        except TemplateSyntaxError as exc:
            errors.append({"field": part, "message": f"line {exc.lineno}: {exc.message}"})
        except (RecursionError, BudgetExceeded) as exc:
            errors.append({"field": part, "message": compile_problem(exc) or type(exc).__name__})
        return None

    def render(self, variables: Mapping[str, Any]) -> Rendered | RenderFailure:
        """Every part rendered in full, or the first failure; never a partial message."""
        part: Part = "subject"
        try:
            with Budget().running():
                assert self._subject is not None
                subject = _render_part(self._subject, "subject", variables)
                part = "html"
                html = _render_part(self._html, "html", variables) if self._html else None
                part = "text"
                text = _render_part(self._text, "text", variables) if self._text else None
        except (OutputTooLarge, BudgetExceeded) as exc:
            return RenderFailure(part, str(exc))
        except Exception as exc:  # noqa: BLE001 — tenant template code: any error is this recipient's failure
            return _describe(part, exc)
        if html is not None:
            if text is None:
                text = html_to_text(html)
            try:
                html = inline_css(html)
            except css_inline.InlineError as exc:
                return RenderFailure("html", f"CSS could not be inlined: {exc}")
        return Rendered(subject=subject, html=html, text=text)
