"""Which event loop every role runs on (``SEALMAIL_EVENT_LOOP``).

``uvloop`` (libuv) is the default: its transports and its TLS (``loop.start_tls``, used by
the SMTP listeners' STARTTLS and by aiosmtplib) are compiled code, where asyncio's loop runs
TLS through the pure-Python ``asyncio.sslproto``.  ``asyncio`` is the standard library's
loop, for an operator who wants it; where uvloop cannot be imported (it has no Windows
build) the standard loop is used either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Literal

__all__ = ["DEFAULT_EVENT_LOOP", "EventLoopName", "loop_factory"]

EventLoopName = Literal["uvloop", "asyncio"]
DEFAULT_EVENT_LOOP: Final[EventLoopName] = "uvloop"


def loop_factory(name: str = DEFAULT_EVENT_LOOP) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of kind ``name`` (``asyncio.Runner(loop_factory=...)``)."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:  # no build for this platform: the standard loop
            return asyncio.new_event_loop
        return uvloop.new_event_loop
    return asyncio.new_event_loop
