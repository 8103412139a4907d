"""Parse ``Autocrypt:`` headers (Autocrypt Level 1, §2.1 "The Autocrypt Header").

A header looks like::

    Autocrypt: addr=alice@example.org; prefer-encrypt=mutual; keydata=mQGNBF…
     …base64 folded over several lines…

The rules applied here, all from Level 1 §2.1 and §2.3:

* ``addr`` and ``keydata`` are mandatory; ``keydata`` is base64 of a binary OpenPGP
  key, may be folded with whitespace, and comes last ("for ease of parsing").
* ``prefer-encrypt`` is optional and only the exact value ``mutual`` means anything;
  anything else (``MUTUAL`` included: attribute values are case-sensitive) counts as no
  preference.
* A header larger than 10 KiB is invalid (§2.1 "SHOULD NOT be larger than 10 KiB"; treating
  it as invalid bounds what a stranger can make us parse and store).
* Mail that a machine sent on its own (``Auto-Submitted`` other than ``no``, RFC 3834 §5)
  updates no peer state (§2.3): an out-of-office reply or a bounce speaks for the
  autoresponder, not for the person.
* An attribute whose name starts with ``_`` is non-critical and ignored when
  unknown.  An unknown attribute without the underscore is critical: the whole
  header is invalid (so "ignore unknown critical attributes" means "ignore the
  header that carries them").
* ``addr`` must be the address in ``From``, compared case-insensitively as Autocrypt
  canonicalizes addresses to lowercase; a message with several From addresses has
  no usable header, and neither has one with more than one valid header.

Everything here is pure; what to do with the key (import, trust level
"harvested", peer state) is decided elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import getaddresses

HEADER_NAME = "Autocrypt"
_KNOWN = frozenset({"addr", "prefer-encrypt", "keydata"})
_WHITESPACE = re.compile(r"[ \t\r\n]+")
# Autocrypt Level 1 §2.1: headers over 10 KiB are treated as invalid.
MAX_HEADER_BYTES = 10 * 1024


class PreferEncrypt(enum.StrEnum):
    MUTUAL = "mutual"
    NOPREFERENCE = "nopreference"


class AutocryptHeaderError(ValueError):
    """The header is invalid and MUST be ignored (Autocrypt Level 1 §2.1)."""


@dataclass(frozen=True, slots=True)
class AutocryptHeader:
    addr: str  # lowercase, as Autocrypt canonicalizes it
    prefer_encrypt: PreferEncrypt
    keydata: bytes  # binary OpenPGP key

    def __repr__(self) -> str:
        # Keep addresses out of reprs that end up in logs and tracebacks.
        prefer = self.prefer_encrypt.value
        return f"AutocryptHeader(prefer_encrypt={prefer!r}, keydata={len(self.keydata)} bytes)"


def _decode_keydata(value: str) -> bytes:
    compact = _WHITESPACE.sub("", value)
    try:
        keydata = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AutocryptHeaderError("keydata is not valid base64") from exc
    # RFC 9580 §4.2: every packet header has its top bit set; a key starts with one.
    if not keydata or not keydata[0] & 0x80:
        raise AutocryptHeaderError("keydata is not a binary OpenPGP key")
    return keydata


def parse_autocrypt_header(value: str) -> AutocryptHeader:
    """Parse one header value; raise :class:`AutocryptHeaderError` when it must be ignored."""
    if len(value.encode("utf-8", "surrogateescape")) > MAX_HEADER_BYTES:
        raise AutocryptHeaderError("header larger than 10 KiB")
    attributes: dict[str, str] = {}
    names: list[str] = []
    for raw in value.split(";"):
        part = raw.strip(" \t\r\n")
        if not part:
            continue
        name, sep, attr_value = part.partition("=")
        name = name.strip(" \t\r\n").lower()
        if not sep or not name:
            raise AutocryptHeaderError("attribute without a value")
        if name in names:
            raise AutocryptHeaderError(f"repeated attribute {name}")
        names.append(name)
        if name.startswith("_"):
            continue  # non-critical and unknown to us: ignored
        if name not in _KNOWN:
            raise AutocryptHeaderError(f"unknown critical attribute {name}")
        attributes[name] = attr_value.strip(" \t\r\n")
    if "addr" not in attributes or "keydata" not in attributes:
        raise AutocryptHeaderError("addr and keydata are mandatory")
    if names[-1] != "keydata":
        raise AutocryptHeaderError("keydata must be the last attribute")
    addr = attributes["addr"].lower()
    if addr.count("@") != 1 or addr.startswith("@") or addr.endswith("@"):
        raise AutocryptHeaderError("addr is not an email address")
    prefer = (
        PreferEncrypt.MUTUAL
        if attributes.get("prefer-encrypt", "") == PreferEncrypt.MUTUAL.value
        else PreferEncrypt.NOPREFERENCE
    )
    return AutocryptHeader(addr, prefer, _decode_keydata(attributes["keydata"]))


def is_automatic(auto_submitted: str | None, content_type: str = "") -> bool:
    """Whether a message was sent automatically and must not update Autocrypt state.

    RFC 3834 §5: any ``Auto-Submitted`` value except ``no`` marks machine-sent mail;
    a ``multipart/report`` (RFC 6522: DSNs, MDNs) is machine-sent by definition.
    """
    value = (auto_submitted or "").split(";", 1)[0].strip().lower()
    if value and value != "no":
        return True
    return content_type.strip().lower().startswith("multipart/report")


def sender_address(from_header: str) -> str | None:
    """The single address in a From header, lowercase, or None when there is not exactly one."""
    addresses = [addr for _, addr in getaddresses([from_header]) if addr]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    return addresses[0].lower()


def select_autocrypt_header(header_values: Iterable[str], from_header: str) -> AutocryptHeader | None:
    """The Autocrypt header that applies to a message, or None.

    ``header_values`` are all ``Autocrypt:`` field values of the message (unfolded or
    not), ``from_header`` its From field.  Invalid headers and headers for another
    address are skipped; if more than one valid header remains, none is used.
    """
    sender = sender_address(from_header)
    if sender is None:
        return None
    valid: list[AutocryptHeader] = []
    for value in header_values:
        try:
            header = parse_autocrypt_header(value)
        except AutocryptHeaderError:
            continue
        if header.addr == sender:
            valid.append(header)
    return valid[0] if len(valid) == 1 else None
