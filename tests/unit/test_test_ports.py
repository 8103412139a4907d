"""The ports the suite names before binding stay out of the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support import ports


def test_a_named_port_is_below_the_ephemeral_range_and_free() -> None:
    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    handed = [ports.unused_port() for _ in range(5)]
    assert len(set(handed)) == 5  # not the same port twice in a row
    assert all(port < floor for port in handed)
    with socket.socket() as server:  # free: a server can bind it
        server.bind(("127.0.0.1", handed[0]))


def test_a_taken_port_is_passed_over() -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", ports.unused_port()))
        taken.listen()
        block = ports._block()
        # Round the cycle to the taken port: it is skipped, never handed out.
        seen = {ports.unused_port() for _ in range(len(block))}
        assert taken.getsockname()[1] not in seen
