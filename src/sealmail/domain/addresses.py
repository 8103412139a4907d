"""Mail addresses and custom headers as intake accepts them.

``parse_address`` turns what an API client typed (``"Dr. Lee <lee@clinic.example>"`` or
a bare ``lee@clinic.example``) into an ``Address`` value, or raises ``InvalidAddress``
naming the field, so the API can answer 422 with ``to[3]`` rather than a stack trace.

Syntax checking is delegated to ``email_validator`` (RFC 5321/5322 dot-atoms, quoted
local parts, RFC 6531 UTF-8 local parts, UTS #46 domain mapping) with DNS checks off:
this module does no I/O.  Its exception is translated here so that no library
exception leaves the domain.  The RFC 5321 size limits are checked explicitly first so
their messages are stable and cite the rule.

``validate_header`` guards the custom headers a client may add: a header name or value
that smuggles a CR or LF could inject headers (or a whole second message), and some
headers are Sealmail's to set (``PROTECTED_HEADERS``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import idna
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

__all__ = [
    "LINE_BREAKS",
    "PROTECTED_HEADERS",
    "PROTECTED_HEADER_PREFIXES",
    "Address",
    "InvalidAddress",
    "InvalidHeader",
    "header_text_problem",
    "parse_address",
    "parse_address_list",
    "redact_address",
    "validate_header",
]

# RFC 5321 §4.5.3.1.1: local part at most 64 octets.
MAX_LOCAL_PART_OCTETS: Final = 64
# RFC 5321 §4.5.3.1.2: domain at most 255 octets.
MAX_DOMAIN_OCTETS: Final = 255
# RFC 5321 §4.5.3.1.3 limits a path to 256 octets including "<" and ">", which leaves
# 254 for the address itself (RFC 3696 erratum 1690).
MAX_ADDRESS_OCTETS: Final = 254
# RFC 5322 §2.1.1: a line is at most 998 characters, excluding CRLF.
MAX_HEADER_VALUE_OCTETS: Final = 998
# RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; a field name that cannot fit
# on one with ": " cannot be folded at all, so longer names are refused.
MAX_HEADER_NAME_LENGTH: Final = 76


class InvalidAddress(ValueError):
    """An address the client supplied is unusable; ``field`` says which one.

    ``value_redacted`` is safe to log (see ``redact_address``); ``reason`` is a sentence
    for the client.  Neither contains the full address.
    """

    def __init__(self, field: str, value_redacted: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.value_redacted = value_redacted
        self.reason = reason


class InvalidHeader(ValueError):
    """A custom header the client supplied is unusable; ``field`` says which one."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Address:
    """A validated mailbox.

    ``local_part`` is the semantic value, unquoted (``john doe`` for
    ``"john doe"@x.example``); ``addr_spec`` is the normalised wire form, quoted only
    where RFC 5322 §3.4.1 requires it, with the Unicode domain.  ``domain`` is
    lower-case Unicode after UTS #46 mapping; ``ascii_domain`` its IDNA A-label form
    (RFC 5890).  Local parts are kept as given: RFC 5321 §2.4 makes them case-sensitive.
    ``needs_smtputf8`` is set when the local part is not ASCII; a non-ASCII domain alone
    does not need SMTPUTF8 because it can be sent as A-labels (``smtp_addr_spec``).
    """

    display_name: str | None
    local_part: str
    domain: str
    ascii_domain: str
    addr_spec: str
    needs_smtputf8: bool

    @property
    def smtp_addr_spec(self) -> str:
        """The form for MAIL FROM / RCPT TO: the local part as normalised, A-label domain."""
        local, _, _ = self.addr_spec.rpartition("@")
        return f"{local}@{self.ascii_domain}"


def redact_address(value: str) -> str:
    """A loggable stand-in for an address: ``j***@clinic.example``.

    Addresses are identifiers under HIPAA (45 CFR §164.514(b)(2)(i)(F)), so logs keep
    only the first character of the local part and the domain, which is usually enough
    to tell a typo in the domain from an unknown user.  Control characters are replaced
    so the result cannot forge log lines.
    """
    _, lt, inner = value.rpartition("<")
    candidate = inner.rstrip(">").strip() if lt else value.strip()
    local, at, domain = candidate.rpartition("@")
    if not at:
        shown = f"<{len(value)} characters>"
    else:
        head = local.lstrip('"')[:1] or "?"
        shown = f"{head}***@{domain[:64]}"
    return "".join(ch if ch.isprintable() else "?" for ch in shown)


# Characters ``str.splitlines`` ends a line at beyond CR and LF (VT, FF, FS, GS, RS, NEL,
# LINE SEPARATOR, PARAGRAPH SEPARATOR): ``email.header`` folds at every one of them, so one
# in a value either becomes a header field of its own or makes the builder raise.
LINE_BREAKS: Final = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# UTF-16 surrogate code points: never characters of their own in a Python ``str``.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def header_text_problem(value: str) -> str | None:
    """Why ``value`` is unsafe as (part of) a header field's text, or None.

    A CR or LF in an address or header value is header injection (RFC 5322 §2.2 ends a
    field at CRLF); NUL is forbidden outright (RFC 5322 §3.2.3 lists it as obsolete
    only) and truncates strings in C libraries downstream.  Every other C0 and C1
    control and the Unicode line and paragraph separators are refused too: each is a
    line break to some parser on the way (Python's among them, see ``LINE_BREAKS``).
    A lone surrogate is what invalid UTF-8 becomes once decoded with ``surrogateescape``
    (aiosmtpd's SMTP arguments; a JSON ``\\udcff`` escape too): no mail system can encode
    it, so it is refused here rather than failing later where the value is written out.
    Every path from client input into a generated header checks its text here.
    """
    if not value.isascii() and _SURROGATE.search(value) is not None:
        return "is not valid UTF-8"
    if "\0" in value:
        return "must not contain NUL"
    if "\r" in value or "\n" in value:
        return "must not contain CR or LF"
    if "\u2028" in value or "\u2029" in value:
        return "must not contain line or paragraph separators (U+2028, U+2029)"
    if any((ord(ch) < 0x20 and ch != "\t") or 0x7F <= ord(ch) <= 0x9F for ch in value):
        return "must not contain control characters"
    return None


def _split_angle_addr(value: str) -> tuple[str | None, str] | None:
    """Split ``Name <addr>`` into its parts, quote-aware; None when brackets are wrong.

    A "<" inside a quoted display name (``"A <b>" <a@x.example>``) or a quoted local
    part does not count, which a plain ``rpartition("<")`` would get wrong.
    """
    opens: list[int] = []
    closes: list[int] = []
    quoted = False
    escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            opens.append(i)
        elif not quoted and ch == ">":
            closes.append(i)
    if not opens and not closes:
        return None, value
    if len(opens) != 1 or closes != [len(value) - 1] or opens[0] > closes[0]:
        return None
    display = value[: opens[0]].strip()
    return (_unquote(display) or None), value[opens[0] + 1 : -1].strip()


def _unquote(text: str) -> str:
    """Remove RFC 5322 §3.2.4 quoting (DQUOTE ... DQUOTE with quoted-pairs)."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        out = []
        escaped = False
        for ch in text[1:-1]:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return text


def _octets(text: str) -> int:
    return len(text.encode("utf-8"))


# Pure and ~0.2 ms a call (email_validator's and IDNA's per-character checks), asked for
# every MAIL FROM and RCPT TO: a sender's address repeats on every message, so the results
# of the last few thousand valid addresses are kept (a refusal is raised afresh each time).
@functools.lru_cache(maxsize=4096)
def parse_address(value: str, field: str) -> Address:
    """Validate one address (``"Name <a@b>"``, ``<a@b>`` or ``a@b``) for intake."""
    return _parse_address(value, field, shortcut=True)


# An ASCII dot-atom at a lower-case LDH domain of two labels or more with an alphabetic
# top label, no label with "--" at its third and fourth place (IDNA's): what nearly every
# recipient looks like, and what email_validator and IDNA return unchanged (the local part
# as given, the domain as its own ASCII form).  A property test holds the shortcut to the
# full path's answer; anything else (upper case, quoting, UTF-8, xn--, special-use names)
# takes the full path.  Every address a campaign or journey sends to is new to the cache,
# and the full path was a tenth of a journey send's CPU.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN: Final = re.compile(rf"(?a){_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+[a-z]{{2,63}}")
_SPECIAL_USE: Final = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def _plain(addr: str, domain: str) -> bool:
    if _PLAIN.fullmatch(addr) is None or len(addr) > MAX_ADDRESS_OCTETS or len(domain) > 253:
        return False
    labels = domain.split(".")
    if any(label[2:4] == "--" for label in labels):
        return False
    # A special-use name, or a domain under one (``x.localhost``, ``a.b.onion``).
    return not any(".".join(labels[i:]) in _SPECIAL_USE for i in range(len(labels)))


def _parse_address(value: str, field: str, *, shortcut: bool) -> Address:
    def fail(reason: str) -> InvalidAddress:
        return InvalidAddress(field, redact_address(value), reason)

    problem = header_text_problem(value)
    if problem is not None:
        raise fail(problem)
    stripped = value.strip()
    if not stripped:
        raise fail("is empty")
    split = _split_angle_addr(stripped)
    if split is None:
        raise fail('has unbalanced "<" and ">"; use "Name <user@example.com>"')
    display_name, addr = split
    local, at, domain = addr.rpartition("@")
    if not at:
        raise fail("is missing the @ sign")
    if not local:
        raise fail("has nothing before the @ sign")
    if not domain:
        raise fail("has nothing after the @ sign")
    if _octets(local) > MAX_LOCAL_PART_OCTETS:
        raise fail(f"has a local part longer than {MAX_LOCAL_PART_OCTETS} octets")
    if _octets(domain) > MAX_DOMAIN_OCTETS:
        raise fail(f"has a domain longer than {MAX_DOMAIN_OCTETS} octets")
    if _octets(addr) > MAX_ADDRESS_OCTETS:
        raise fail(f"is longer than {MAX_ADDRESS_OCTETS} octets")

    if shortcut and _plain(addr, domain):
        return Address(
            display_name=display_name,
            local_part=local,
            domain=domain,
            ascii_domain=domain,
            addr_spec=addr,
            needs_smtputf8=False,
        )
    try:
        # Domain literals ("user@[192.0.2.1]") are refused: they bypass MX routing and
        # the MTA-STS/DANE policy lookups that are keyed on a domain name.
        valid = validate_email(
            addr,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=True,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
        )
    except EmailNotValidError as exc:
        raise fail(str(exc)) from None

    try:
        # UTS #46 non-transitional processing (IDNA2008 as browsers apply it), so
        # "faß.de" stays distinct from "fass.de".
        ascii_domain = idna.encode(valid.domain, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError:
        raise fail("has a domain that is not valid IDNA") from None
    if len(ascii_domain) > MAX_DOMAIN_OCTETS:
        raise fail(f"has a domain longer than {MAX_DOMAIN_OCTETS} octets")
    if _octets(f"{valid.local_part}@{ascii_domain}") > MAX_ADDRESS_OCTETS:
        raise fail(f"is longer than {MAX_ADDRESS_OCTETS} octets")

    return Address(
        display_name=display_name,
        local_part=_unquote(valid.local_part),
        domain=valid.domain,
        ascii_domain=ascii_domain,
        addr_spec=valid.normalized,
        # RFC 6531 §3.2: only a non-ASCII local part forces SMTPUTF8.
        needs_smtputf8=not valid.local_part.isascii(),
    )


def parse_address_list(values: Iterable[str], field: str) -> list[Address]:
    """Validate each address; the first bad one raises with ``field[index]``."""
    if isinstance(values, str):
        # A bare string is iterable too; validating it character by character would
        # report a baffling "to[0]".
        raise TypeError(f"{field} must be a list of addresses, not a string")
    return [parse_address(value, f"{field}[{i}]") for i, value in enumerate(values)]


# Headers Sealmail sets itself (addressing, identity, MIME structure, signatures,
# trace) or whose forgery would weaken a guarantee.  Compared case-insensitively
# (RFC 5322 §1.2.2).
PROTECTED_HEADERS: Final[frozenset[str]] = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Sender",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        # RFC 5321 §4.4: added by the final delivery MTA from the envelope.
        "Return-Path",
        "Received",
        "DKIM-Signature",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        # RFC 8058: one-click unsubscribe must come from Sealmail's own endpoint.
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        # RFC 8601 §5: a forged Authentication-Results could fool the recipient.
        "Authentication-Results",
        # RFC 8689 §5: "TLS-Required: No" asks every hop to ignore TLS policy, which
        # would let a client opt PHI out of encryption in transit.
        "TLS-Required",
    )
)
# ARC-* (RFC 8617) sets are sealed by Sealmail; X-Sealmail-* are our own; Content-*
# (RFC 2045) and Resent-* (RFC 5322 §3.6.6) belong to the MIME builder and to trace.
PROTECTED_HEADER_PREFIXES: Final[tuple[str, ...]] = (
    "arc-",
    "x-sealmail-",
    "content-",
    "resent-",
)


def _is_ftext(name: str) -> bool:
    # RFC 5322 §3.6.8: ftext = %d33-57 / %d59-126 (printable ASCII except ":").
    return all(33 <= ord(ch) <= 126 and ch != ":" for ch in name)


def validate_header(name: str, value: str, *, field: str = "headers") -> None:
    """Accept a custom header or raise ``InvalidHeader`` naming it (``headers.X-Foo``)."""
    if not name:
        raise InvalidHeader(field, "header name is empty")
    if not _is_ftext(name):
        # repr() escapes CR/LF, so the offending name can be shown without injecting.
        raise InvalidHeader(
            f"{field}[{name[:40]!r}]",
            "header name must be printable ASCII without spaces or colons (RFC 5322 §3.6.8)",
        )
    where = f"{field}.{name}"
    if len(name) > MAX_HEADER_NAME_LENGTH:
        raise InvalidHeader(where, f"header name is longer than {MAX_HEADER_NAME_LENGTH} characters")
    lowered = name.lower()
    if lowered in PROTECTED_HEADERS or lowered.startswith(PROTECTED_HEADER_PREFIXES):
        raise InvalidHeader(where, f"{name} is set by Sealmail and cannot be overridden")
    problem = header_text_problem(value)
    if problem is not None:
        raise InvalidHeader(where, f"header value {problem}")
    if _octets(value) > MAX_HEADER_VALUE_OCTETS:
        raise InvalidHeader(where, f"header value is longer than {MAX_HEADER_VALUE_OCTETS} octets")
