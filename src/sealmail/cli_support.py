"""What the feature CLIs (``sealmail webhooks``, ``sealmail suppressions``, ``sealmail portal``)
share: how a command gets the service it works on, and how errors reach the terminal.

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
from typing import Generic, TypeVar

from rich.console import Console

T = TypeVar("T")

err = Console(stderr=True, highlight=False)


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
        for line in lines:
            sys.stdout.write(line)
        return False
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(lines)
    return True
