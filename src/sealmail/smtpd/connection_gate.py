"""How many SMTP connections a listener holds at once: in all, and from one client address.

Every connection is a socket, a buffer and an idle timer of up to five minutes, so a client
that opens thousands (or trickles a command every few minutes on each) would hold the
listener's file descriptors and memory for every other sender.  Postfix caps this with
``default_process_limit`` (100 smtpd processes) and ``smtpd_client_connection_count_limit``
(50 per client, its ``mynetworks`` exempt); these are the same two limits.  Networks
exempt from the per-client cap (the Microsoft 365 / Google Workspace connector ranges,
which open many parallel connections from few addresses) still count toward the total.

The counts are per listener and per process: several SMTP processes on one port each hold
their own.  One listener's connections all run on its own event loop thread, so the
counts need no lock.
"""

from __future__ import annotations

import collections
import enum
import ipaddress
from collections.abc import Iterable
from typing import Final

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Postfix's defaults (process limit 100 and 50 per client) scaled for one event loop, where
# a connection costs a few kilobytes rather than a process.
DEFAULT_MAX_CONNECTIONS: Final = 500
DEFAULT_MAX_PER_CLIENT: Final = 50


class Refusal(enum.StrEnum):
    """Why a connection was not admitted (the reply and the rejection count say which)."""

    LISTENER_FULL = "too_many_connections"
    CLIENT_FULL = "too_many_connections_from_client"


class Admission:
    """One admitted connection; ``ConnectionGate.release`` gives its places back once."""

    __slots__ = ("client", "released")

    def __init__(self, client: IpAddress | None) -> None:
        self.client = client
        self.released = False


class ConnectionGate:
    """Admits a new connection while the listener and its client are under their caps."""

    def __init__(
        self,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_per_client: int = DEFAULT_MAX_PER_CLIENT,
        exempt: Iterable[IpNetwork] = (),
    ) -> None:
        if max_connections < 1 or max_per_client < 1:
            raise ValueError("connection limits must be at least 1")
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.exempt = tuple(exempt)
        self.open = 0
        self.by_client: collections.Counter[IpAddress] = collections.Counter()

    def admit(self, client: IpAddress | None) -> Admission | Refusal:
        """A place for a connection from ``client`` (None: address unknown), or why not.

        An unknown address counts toward the total only: it cannot be told apart from others.
        """
        if self.open >= self.max_connections:
            return Refusal.LISTENER_FULL
        counted = client if client is not None and not self._exempt(client) else None
        if counted is not None and self.by_client[counted] >= self.max_per_client:
            return Refusal.CLIENT_FULL
        self.open += 1
        if counted is not None:
            self.by_client[counted] += 1
        return Admission(counted)

    def release(self, admission: Admission) -> None:
        if admission.released:
            return
        admission.released = True
        self.open -= 1
        client = admission.client
        if client is not None:
            self.by_client[client] -= 1
            if self.by_client[client] <= 0:
                del self.by_client[client]

    def _exempt(self, client: IpAddress) -> bool:
        return any(client.version == n.version and client in n for n in self.exempt)
