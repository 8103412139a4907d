"""What the feature CLIs (``sealmail webhooks``, ``sealmail suppressions``, ``sealmail portal``)
share: how a command gets the service it works on, and how errors reach the terminal.

A feature's commands never build services: each feature module declares a typed
``SessionOpener`` and the root CLI (``sealmail.cli``, an entry point above the composition
root) binds it to services built from settings.  So the feature imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
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
