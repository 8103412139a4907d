"""Reports built to break the parser, sent to the real inbound listener over STARTTLS.

A report is remote input with no header limits: whatever it holds, the sending MTA gets
250 (a 451 makes it retry the same bytes for days), the report is counted unrecognized,
nothing changes, and the listener answers at once and keeps serving.
"""

from __future__ import annotations

import socket
import ssl
import time
import tracemalloc

from tests.integration.bounces.conftest import Bounces
from tests.unit.bounces.hostile import PATIENT, nested_comment_dsn, semicolon_dsn
from tests.unit.bounces.samples import postfix_dsn


def test_reports_the_parser_chokes_on_are_accepted_as_unrecognized_at_once(bounces: Bounces) -> None:
    mid, return_path = bounces.deliver()
    for hostile in (nested_comment_dsn(return_path), semicolon_dsn(return_path)):
        started = time.perf_counter()
        sent = bounces.report(hostile, [return_path])
        # Generous: the quadratic parse took ~50 s of the listener's thread for this one.
        assert time.perf_counter() - started < 5.0
        assert sent.data == (250, "2.0.0 Report received")
    assert bounces.listener.reports["unrecognized"] == 2
    assert bounces.listener.rejections["internal_error"] == 0
    assert bounces.recipient(mid)["status"] == "delivered"
    # The next, well-formed report is read and applied.
    assert bounces.report(postfix_dsn(PATIENT, return_path=return_path), [return_path]).data == (
        250,
        "2.0.0 Report received",
    )
    assert bounces.recipient(mid)["status"] == "bounced"


def _reply(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while not (data.endswith(b"\r\n") and data.split(b"\r\n")[-2][3:4] == b" "):
        data += sock.recv(4096)
    return data


def test_a_huge_report_costs_the_listener_its_first_megabyte_not_its_size(bounces: Bounces) -> None:
    """A DSN may return a large original, and the SIZE limit allows 25 MB; the parser reads
    the first MAX_PARSE_BYTES.  The rest is read and dropped, so a client that knows a report
    address (the feedback-loop one is no secret) cannot make the listener hold megabytes
    per connection."""
    mid, return_path = bounces.deliver()
    head, tail = postfix_dsn(PATIENT, return_path=return_path).split(b"Your results are ready.\r\n")
    line = b"x" * 78 + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", bounces.listener.port), timeout=30)
    tracemalloc.start()
    try:
        assert _reply(sock).startswith(b"220")
        sock.sendall(b"EHLO mx.example.net\r\n")
        _reply(sock)
        sock.sendall(b"STARTTLS\r\n")
        assert _reply(sock).startswith(b"220")
        tls = bounces.ca.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        for command in (
            b"EHLO mx.example.net",
            b"MAIL FROM:<>",
            f"RCPT TO:<{return_path}>".encode(),
            b"DATA",
        ):
            tls.sendall(command + b"\r\n")
            assert _reply(tls)[:1] in (b"2", b"3")
        tls.sendall(head)
        chunk = line * 800  # 64 KB, sent 200 times: 12.8 MB of returned original
        for _ in range(200):
            tls.sendall(chunk)
        tls.sendall(tail + b".\r\n")
        assert _reply(tls) == b"250 2.0.0 Report received\r\n"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sock.close()
    # Held whole, the peak was ~39 MB (three copies of the section, then the parse); read to
    # its first megabyte, ~10 MB, the parse of that megabyte and the TLS buffers included.
    assert peak < 16 * 1024 * 1024, peak
    assert bounces.recipient(mid)["status"] == "bounced"
