"""The ``sealmail remote`` console: server data reaches the terminal as text, never as controls.

The client library imports nothing of the server (.importlinter ``client-standalone``), so
it carries its own small copy of the rule in ``sealmail.cli_support.SafeConsole``: what the
API returns (subjects, addresses, problem details quoting input) may hold ESC, C1 or bidi
controls, and rich would pass them to the operator's terminal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from rich.console import Console
from rich.errors import MarkupError
from rich.segment import Segment
from rich.text import Text

# C0 but tab/newline (and CR before one), DEL, C1, and the bidi embeddings, overrides,
# isolates and marks.
_CONTROLS: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]|\r(?!\n)"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` with each control written as ``\\xNN`` or ``\\uNNNN``."""
    return _CONTROLS.sub(_escaped, text)


class RemoteConsole(Console):
    """Escapes strings before layout and every data segment of the final output; drops
    hyperlinks (an OSC 8 link from markup in a value could hide where it leads)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        try:
            return super().render_str(shown(text), **kwargs)
        except MarkupError:  # a stray "[/x]" in data: the line as written, not a traceback
            return super().render_str(shown(text), **{**kwargs, "markup": False})

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(s if s.control else _plain(s) for s in buffer)


def _plain(seg: Segment) -> Segment:
    style = seg.style.update_link(None) if seg.style is not None and seg.style.link else seg.style
    return Segment(shown(seg.text), style)
