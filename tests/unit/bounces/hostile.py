"""Reports a remote system could send to break the parser: shared by the unit and listener tests."""

from __future__ import annotations

from tests.unit.bounces.samples import postfix_dsn

PATIENT = "patient@example.net"


def folded(chunk: bytes, lines: int) -> bytes:
    """``chunk`` repeated on ``lines`` folded lines (SMTP allows 1000 octets a line)."""
    return b"\r\n ".join([chunk] * lines)


def nested_comment_dsn(return_path: str) -> bytes:
    """A DSN whose Final-Recipient nests 5,400 comments: the stdlib address parser recurses."""
    return postfix_dsn(PATIENT, return_path=return_path).replace(
        b"Final-Recipient: rfc822; " + PATIENT.encode(),
        b"Final-Recipient: rfc822; " + folded(b"(" * 900, 6) + PATIENT.encode(),
    )


def semicolon_dsn(return_path: str, lines: int = 220) -> bytes:
    """A DSN whose Content-Type carries ~200 KB of quoted semicolons: the email package's
    parameter splitter is quadratic in them (minutes for this one)."""
    return postfix_dsn(PATIENT, return_path=return_path).replace(
        b"report-type=delivery-status;",
        b'report-type=delivery-status; x="' + folded(b";" * 900, lines) + b'";',
    )
