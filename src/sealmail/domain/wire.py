"""The canonical form of what Sealmail transmits: CRLF line ends only, no NUL.

Whatever intake accepted (and whatever an older release stored), the bytes that leave
for the next hop are made canonical here, before DKIM signs them (so the signature
covers exactly what is sent) and again by the SMTP client before dot-stuffing.  A bare
CR, a bare LF or a NUL is read differently by different receivers: a lenient one that
drops NUL or ends lines at a bare LF could see ``<LF>.<LF>`` or ``<CRLF>.<NUL><CRLF>``
as the end of data and the rest as a second, unauthenticated message (SMTP smuggling).
RFC 5321 §2.3.8 allows only CRLF line ends and §4.5.2 leaves NUL out of mail data.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["canonical_message"]

_ANY_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
_BARE_LINE_END: Final = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def canonical_message(message: bytes) -> bytes:
    """``message`` with NUL removed and every CR, LF or CRLF made CRLF, ending in CRLF.

    In the header section of a CRLF message a stray bare CR or LF becomes a fold
    (CRLF SP, RFC 5322 §2.2.3) rather than a line end, so ``X-A: a<CR>Bcc: b`` stays
    one field instead of turning into a new, unchecked ``Bcc`` field at the next hop.
    """
    if b"\0" in message:
        message = message.replace(b"\0", b"")
    without_crlf = message.replace(b"\r\n", b"")
    if b"\r" in without_crlf or b"\n" in without_crlf:
        end = message.find(b"\r\n\r\n")
        if end >= 0:
            header = _BARE_LINE_END.sub(b"\r\n ", message[: end + 2])
            message = header + _ANY_LINE_END.sub(b"\r\n", message[end + 2 :])
        else:
            message = _ANY_LINE_END.sub(b"\r\n", message)
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message
