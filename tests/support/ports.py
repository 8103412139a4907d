"""Ports for servers a test names before they are bound (``sealmail serve`` in a subprocess
reads its ports from the environment; aiosmtpd's controller cannot bind port 0).

A port found by binding port 0 and closing it again is from the kernel's ephemeral range, and
until the server binds it (seconds later: ``sealmail init`` runs first) any ``connect()`` in any
test process may be given it as its local port, and the server then fails to start.  These
come from below that range, where only an explicit bind takes a port, and each xdist worker has
a block of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
from pathlib import Path

_BLOCK = 400
_FLOOR = 10000


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _block() -> range:
    """This worker's block: the workers of one run take neighbouring blocks, from a place
    each run draws anew (xdist's run id, or this process's), so that two suites running at
    once on one machine (a developer's and a helper's) do not walk the same ports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    blocks = max(1, (_ephemeral_floor() - _FLOOR) // _BLOCK)
    first = int.from_bytes(hashlib.sha256(run.encode()).digest()[:4], "big")
    start = _FLOOR + (first + (int(worker) if worker.isdigit() else 0)) % blocks * _BLOCK
    return range(start, start + _BLOCK)


# Round-robin through the block: a port handed out stays unused until the block has wrapped,
# so a server that has not bound yet does not get a neighbour test's port.
_ports = itertools.cycle(_block())


def unused_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` nothing listens on now and the kernel will not hand out on its own."""
    for _ in range(_BLOCK):
        port = next(_ports)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue  # taken by something outside the suite: the next one
            return port
    raise RuntimeError(f"no free port in {_block()} on {host}")
