"""Typer apps converted to their click commands once per pytest worker, not per invocation.

``typer.testing.CliRunner.invoke`` converts the Typer app it is given into a click command on
every call: for ``sealmail``'s ~130 commands in ~30 groups that took 0.1-0.2 s of CPU each time,
more than most commands themselves, and the suite invokes the CLI in-process hundreds of times
(the files that do took 272 s of test time, 121 s with this and ``adapter_cache``).
``sealmail`` itself converts once per process (``Typer.__call__`` in ``main``); the tests now do
the same per worker.  The command parses and runs exactly as before: options, environment
variables and defaults are read at invocation, by click, as they always were.
"""

from __future__ import annotations

import functools

import typer.testing
from typer.main import get_command


def install() -> None:
    """Give ``typer.testing`` a cached ``get_command`` (keyed by the Typer app's identity)."""
    assert typer.testing._get_command is get_command, "typer.testing changed how it builds commands"
    typer.testing._get_command = functools.cache(get_command)  # type: ignore[assignment]
