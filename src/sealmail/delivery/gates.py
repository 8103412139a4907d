"""What a claimed recipient passes before delivery: the worker's claim gates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy.engine import Connection

from sealmail.messages.queue import Claimed, QueuedMessage

__all__ = ["ClaimGate"]


class ClaimGate(Protocol):
    """A check every claimed recipient passes before delivery (marketing's ``decide_send``).

    ``screen`` runs in one transaction right after the claim and returns the ids it took
    out of this round (deferred or rejected, their lease released by the gate itself).
    ``concerns`` says, without the database, whether ``screen`` has anything to look at: if
    no gate does, no transaction is opened (on SQLite a write transaction per claim).
    """

    def concerns(self, claimed: Sequence[Claimed], msgs: Mapping[str, QueuedMessage]) -> bool: ...

    def screen(
        self, conn: Connection, worker: str, claimed: Sequence[Claimed], msgs: Mapping[str, QueuedMessage]
    ) -> set[str]: ...
