"""What the feature CLIs (``sealmail webhooks``, ``sealmail suppressions``, ``sealmail portal``)
share: how a command gets the service it works on, and how output and errors reach the terminal.

Every CLI console comes from ``console()``: the CLI prints what tenants, patients and outside
senders wrote (names, subjects, addresses, form answers, error messages quoting input), and
rich passes ESC and the other C0/C1 controls through, so a stored ``ESC ] 52`` would write the
operator's clipboard.  ``SafeConsole`` shows every such control as a visible escape at the one
place all output passes (tests/unit/test_cli_output.py keeps other consoles out).

A feature's commands never build services: each feature module declares a typed
``SessionOpener`` and the root CLI (``sealmail.cli``, an entry point above the composition
root) binds it to services built from settings.  So the feature imports nothing above it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Generic, TypeVar

from rich.console import Console
from rich.errors import MarkupError
from rich.segment import Segment
from rich.text import Text

from sealmail.domain.display_text import terminal_text

T = TypeVar("T")


class SafeConsole(Console):
    """A rich console whose output cannot carry a terminal control that came from data.

    Strings are escaped before layout (so tables keep their widths); the final buffer is
    escaped again, which catches ``Text`` objects and anything else built outside
    ``render_str``.  Rich's own styling codes are made from ``Style``s after this step, and
    its control segments (cursor, screen) are left alone, so colours and bold still work.
    Hyperlinks are dropped: no command prints one, and ``[link=https://evil.test]`` in a
    value printed with markup would become an OSC 8 link behind harmless-looking text.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        safe = terminal_text(text)
        try:
            return super().render_str(safe, **kwargs)
        except MarkupError:
            # Data inside a markup f-string held a stray closing tag ("[/x]"): print the line
            # as written rather than crash the command with a traceback.
            return super().render_str(safe, **{**kwargs, "markup": False})

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(seg if seg.control else _data_segment(seg) for seg in buffer)


def _data_segment(seg: Segment) -> Segment:
    style = seg.style.update_link(None) if seg.style is not None and seg.style.link else seg.style
    return Segment(terminal_text(seg.text), style)


def console(*, stderr: bool = False, highlight: bool = False, **options: Any) -> Console:
    """The console every CLI module prints through (``stderr=True`` for errors)."""
    return SafeConsole(stderr=stderr, highlight=highlight, **options)


err = console(stderr=True)


def write_data(text: str) -> None:
    """``text`` to stdout without rich: escaped for a terminal, byte-exact into a pipe."""
    sys.stdout.write(terminal_text(text) if sys.stdout.isatty() else text)


class SessionOpener(Generic[T]):
    """``opener(tenant)`` → a context yielding ``(service, tenant_id)``; bound by the root CLI."""

    def __init__(self, feature: str) -> None:
        self.feature = feature
        self._open: Callable[[str | None], AbstractContextManager[tuple[T, str]]] | None = None

    def bind(self, open_: Callable[[str | None], AbstractContextManager[tuple[T, str]]]) -> None:
        self._open = open_

    def __call__(self, tenant: str | None) -> AbstractContextManager[tuple[T, str]]:
        if self._open is None:
            raise RuntimeError(f"the {self.feature} commands run under `sealmail` (sealmail.cli binds them)")
        return self._open(tenant)


def write_lines(lines: Iterable[str], output: Path | None) -> bool:
    """Write an export to ``output`` (created 0600 from the start: exports hold patients'
    addresses) or, without one, to stdout; True when a file was written."""
    if output is None:
        # On a terminal the operator reads the export, so its controls are escaped; piped
        # into another program it stays byte-exact (CSV quoting does not touch controls).
        for line in lines:
            write_data(line)
        return False
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(lines)
    return True
