"""Wait for a condition instead of sleeping for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, message: str = "condition not met"
) -> None:
    """Poll ``predicate`` until it is true; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s: {message}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


async def wait_until_async(
    predicate: Callable[[], bool], timeout: float = 5.0, message: str = "condition not met"
) -> None:
    """``wait_until`` for code on an event loop: the loop keeps running while it waits."""
    import asyncio

    deadline = time.monotonic() + timeout
    delay = 0.001
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s: {message}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def yield_to_loop(turns: int = 3) -> None:
    """Let other tasks run on what they already have (no time passes: zero-length yields)."""
    import asyncio

    for _ in range(turns):
        await asyncio.sleep(0)
