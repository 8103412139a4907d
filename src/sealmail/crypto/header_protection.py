"""Header Protection for cryptographically protected mail (RFC 9788), shared by PGP/MIME and S/MIME.

The Cryptographic Payload's root part carries a copy of the message's header fields and the
``hp`` parameter on its Content-Type; for an encrypted message it also records, in ``HP-Outer``
fields, what the outer header section showed, so a reader can tell which fields were obscured.
The legacy ``protected-headers="v1"`` parameter (draft-autocrypt-lamps-protected-headers) stays
beside ``hp``: Thunderbird and older Enigmail-era readers look only for it.
"""

from __future__ import annotations

from collections.abc import Sequence

# RFC 9788 §4.1 (hcp_baseline): the Subject is replaced with this placeholder on the outside.
OBSCURED_SUBJECT = b"[...]"
# hcp_baseline drops these from the outer header section altogether.
_REMOVED_OUTSIDE = frozenset({b"comments", b"keywords"})
# Never copied inward: Bcc must not reach To/Cc recipients (RFC 9788 §10.3), structural
# fields describe the wrapper, and X-Sealmail-* are the product's own transport notes.
_NOT_PROTECTED = (b"content-", b"mime-version", b"bcc", b"x-sealmail-")
_NOT_RECORDED = (b"content-", b"mime-version", b"x-sealmail-")


def field_name(raw_field: bytes) -> bytes:
    return raw_field.split(b":", 1)[0].strip().lower()


def _strip(raw_field: bytes) -> bytes:
    return raw_field.rstrip(b"\r\n")


def protected_fields(fields: Sequence[bytes]) -> list[bytes]:
    """The header fields copied into the Cryptographic Payload (RFC 9788 §2.1), CRLF-free."""
    return [_strip(raw) for raw in fields if not field_name(raw).startswith(_NOT_PROTECTED)]


def outer_field(raw_field: bytes) -> bytes | None:
    """What hcp_baseline (RFC 9788 §4.1) leaves of ``raw_field`` on the outer message."""
    name = field_name(raw_field)
    if name in _REMOVED_OUTSIDE:
        return None
    if name == b"subject":
        return b"Subject: " + OBSCURED_SUBJECT
    return _strip(raw_field)


def hp_outer(outer_fields: Sequence[bytes]) -> list[bytes]:
    """One ``HP-Outer`` per non-structural outer field (RFC 9788 §2.2); a field the outer
    message lacks has none, which tells the reader it was removed."""
    kept = [_strip(raw) for raw in outer_fields if not field_name(raw).startswith(_NOT_RECORDED)]
    return [b"HP-Outer: " + b" ".join(line.strip() for line in raw.split(b"\r\n")) for raw in kept]


def mark_content_type(content_type: bytes, *, encrypted: bool) -> bytes:
    """Add ``hp`` (RFC 9788 §2.1: "cipher" when encrypted, "clear" when only signed) and the
    legacy ``protected-headers="v1"`` to a raw Content-Type field, CRLF-free."""
    raw = _strip(content_type)
    lowered = raw.lower()
    if b"hp=" not in lowered.replace(b" ", b"").replace(b"\t", b""):
        raw += b';\r\n hp="cipher"' if encrypted else b';\r\n hp="clear"'
    if b"protected-headers" not in lowered:
        raw += b';\r\n protected-headers="v1"'
    return raw


def payload_head(
    content: Sequence[bytes], protected: Sequence[bytes], outer: Sequence[bytes] | None
) -> bytes:
    """The header section of the Cryptographic Payload's root part, CRLF-terminated lines.

    ``content`` are its Content-* fields, the first being Content-Type; ``outer`` is the outer
    header section of an encrypted message (None when only signed, RFC 9788 §2.2).
    """
    if not content or field_name(content[0]) != b"content-type":
        # RFC 2045 §5.2: a missing Content-Type means text/plain; charset=us-ascii.
        content = [b'Content-Type: text/plain; charset="us-ascii"', *content]
    marked = [mark_content_type(content[0], encrypted=outer is not None), *(_strip(c) for c in content[1:])]
    lines = [*marked, *protected, *(hp_outer(outer) if outer is not None else [])]
    return b"".join(line + b"\r\n" for line in lines)
