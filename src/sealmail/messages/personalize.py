"""Per-recipient touches applied at delivery: the signed return path and link instrumentation.

Both make each recipient's copy different, so a recipient they apply to is sent in its own
SMTP transaction (cheap on a pooled, pipelined connection).  The two parts are supplied
by their features (bounce handling, engagement) and wired in ``runtime.build_worker``;
without them a message goes out exactly as stored, all recipients of a domain together.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from sealmail.messages.queue import Claimed, QueuedMessage


@dataclass(frozen=True, slots=True)
class Instrumented:
    """A recipient's copy of the content, and headers for the outermost message.

    ``raw`` is what gets encrypted (so a tracking pixel travels inside PGP/S/MIME);
    ``outer_headers`` (``List-Unsubscribe`` …) go on the message actually sent, after
    encryption and before DKIM signing, so mailbox providers can read and verify them.
    """

    raw: bytes
    outer_headers: tuple[tuple[str, str], ...] = ()


class ReturnPaths(Protocol):
    def return_path(self, msg: QueuedMessage, recipient: Claimed) -> str | None:
        """The envelope sender for this recipient, or ``None`` to keep ``msg.mail_from``."""
        ...


class Instrumenter(Protocol):
    def applies(self, msg: QueuedMessage) -> bool:
        """Whether any recipient of this message gets an instrumented copy."""
        ...

    def instrument(self, msg: QueuedMessage, recipient: Claimed, raw: bytes, method: str) -> Instrumented:
        """The recipient's copy; ``method`` is SecureLine's choice (tls, pgp, smime, portal)."""
        ...


class Personalizer:
    def __init__(
        self, return_paths: ReturnPaths | None = None, instrumenter: Instrumenter | None = None
    ) -> None:
        self.return_paths = return_paths
        self.instrumenter = instrumenter

    def per_recipient(self, msg: QueuedMessage) -> bool:
        """True when recipients of one domain can no longer share one transaction."""
        if self.return_paths is not None and msg.mail_from:
            return True
        return self.instruments(msg)

    def instruments(self, msg: QueuedMessage) -> bool:
        return self.instrumenter is not None and self.instrumenter.applies(msg)

    def mail_from(self, msg: QueuedMessage, recipient: Claimed) -> str:
        # The null sender (our own DSNs) stays null: bounces of bounces must not loop.
        if self.return_paths is None or not msg.mail_from:
            return msg.mail_from
        return self.return_paths.return_path(msg, recipient) or msg.mail_from

    async def content(self, msg: QueuedMessage, recipient: Claimed, raw: bytes, method: str) -> Instrumented:
        if self.instrumenter is None or not self.instrumenter.applies(msg):
            return Instrumented(raw)
        # MIME parsing and rewriting, and the first copy's write of the tracked URLs, would
        # otherwise hold up every other delivery on the worker's event loop.
        return await asyncio.to_thread(self.instrumenter.instrument, msg, recipient, raw, method)


def add_headers(raw: bytes, headers: tuple[tuple[str, str], ...]) -> bytes:
    """Prepend header fields to a message (values already folded and ASCII)."""
    if not headers:
        return raw
    return b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in headers) + raw
