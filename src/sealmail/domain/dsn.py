"""Delivery status notifications (RFC 3464) for recipients that bounced or expired.

A DSN is ``multipart/report; report-type=delivery-status`` (RFC 6522) with three parts:

1. a short human-readable explanation that quotes nothing from the message;
2. ``message/delivery-status``: per-message fields (Reporting-MTA, Arrival-Date) and one
   per-recipient block (Final-Recipient, Action, Status, Diagnostic-Code, Remote-MTA);
3. ``text/rfc822-headers`` with a fixed safe subset of the original headers.

Sealmail never returns the original body: a DSN goes to the envelope sender, which may
be forged, and the body of a healthcare message is PHI (research/delivery.md §c.8).  For
the same reason only Message-ID, Date, From and To are echoed; see ``SAFE_HEADERS``.

Sending is the caller's job, and so is the envelope: a DSN MUST be sent with a null
reverse-path, ``MAIL FROM:<>`` (RFC 5321 §4.5.5, RFC 3464 §2), so that a DSN about a
DSN is never generated and two MTAs cannot bounce mail at each other forever.  This
module builds bytes only: it reads no clock and generates no identifiers, so the
caller passes ``date`` and ``message_id`` and the same inputs give the same bytes.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import re
import textwrap
from collections.abc import Mapping
from datetime import datetime
from email.message import Message, MIMEPart
from email.parser import HeaderParser
from typing import Final

__all__ = ["SAFE_HEADERS", "build_dsn"]

# The only original headers a DSN echoes.  They identify the message to its sender and
# let mail clients thread the report with it, and they are what the sender wrote anyway.
# Subject is deliberately absent: in healthcare mail it routinely carries PHI ("Your
# HIV test results", a patient's name), and the DSN may reach someone other than the
# real sender because envelope senders can be forged.  Cc and Bcc are absent too: a Bcc
# must never be revealed (RFC 5322 §3.6.3) and a Cc list names other patients.
SAFE_HEADERS: Final[tuple[str, ...]] = ("Message-ID", "Date", "From", "To")

# CRLF line endings, 78-character folding.  Fields this module writes are folded here
# first (see ``_fold``); the library leaves lines that already fit alone, which keeps a
# value from starting on the line after its field name.
_POLICY: Final = email.policy.SMTP
# RFC 5322 §2.1.1: lines SHOULD be at most 78 characters.
_FOLD_WIDTH: Final = 78
# Remote replies can be long and multi-line; the report needs the gist, not all of it.
_MAX_DIAGNOSTIC: Final = 900
_STATUS_RE: Final = re.compile(r"^[45]\.[0-9]{1,3}\.[0-9]{1,3}$")  # ASCII: \d takes "٣" too
_HEADER_END_RE: Final = re.compile(rb"\r?\n\r?\n")
_FOLD_RE: Final = re.compile(r"\r?\n[ \t]+")
_CONTINUATION_RE: Final = re.compile(r"^\d{3}[ -](?:[245]\.\d{1,3}\.\d{1,3} )?")


def _one_line(name: str, value: str) -> str:
    """Refuse values that would inject header lines; the caller passed them wrongly."""
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"{name} must be a single line without CR, LF or NUL")
    return value


def _require_aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _xtext_address(address: str) -> str:
    """An address as RFC 3464 §2.3.2 wants it: ``rfc822;`` if ASCII, else ``utf-8;``.

    RFC 6533 §3 lets a non-ASCII (SMTPUTF8) address appear in an ordinary
    message/delivery-status part as utf-8-addr-xtext: every character outside QCHAR
    (printable ASCII except "+", "=" and "\\") is written as ``\\x{HEX}``.
    """
    _one_line("address", address)
    if address.isascii():
        return f"rfc822; {address}"
    encoded = "".join(
        ch if 0x21 <= ord(ch) <= 0x7E and ch not in "+=\\" else f"\\x{{{ord(ch):X}}}" for ch in address
    )
    return f"utf-8; {encoded}"


def _diagnostic_line(diagnostic: str) -> str:
    """One ASCII line from a possibly multi-line remote reply (RFC 5321 §4.2.1).

    The text is the remote server's words, not message content; it is flattened so a
    hostile reply cannot inject header lines, and non-ASCII is replaced because the
    delivery-status part is ASCII (RFC 3464 §2.1.2).
    """
    lines = [line.strip() for line in diagnostic.replace("\0", " ").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    # "550-5.1.1 a" / "550 5.1.1 b" reads as "550 5.1.1 a b": the code and enhanced
    # code of continuation lines repeat the first line's (RFC 5321 §4.2.1).
    first = _CONTINUATION_RE.sub(lambda m: m.group(0).replace("-", " ", 1), lines[0])
    rest = [_CONTINUATION_RE.sub("", line) for line in lines[1:]]
    flat = " ".join([first, *rest])
    printable = "".join(ch if ch.isprintable() else " " for ch in flat)
    if len(printable) > _MAX_DIAGNOSTIC:
        printable = printable[: _MAX_DIAGNOSTIC - 3] + "..."
    return printable.encode("ascii", "replace").decode("ascii")


def _fold(name: str, value: str) -> str:
    """Fold ``value`` at whitespace so ``name: value`` lines stay within 78 characters.

    RFC 5322 §2.2.3: folding inserts CRLF before existing whitespace; a single word
    longer than a line is left whole, since folding may not split it.
    """
    words = value.split(" ")
    lines: list[str] = []
    current = ""
    budget = _FOLD_WIDTH - len(name) - 2
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > budget:
            lines.append(current)
            current = word
            budget = _FOLD_WIDTH - 1
        else:
            current = candidate
    lines.append(current)
    return "\n ".join(lines)


def _safe_headers(original: bytes | Mapping[str, str]) -> list[tuple[str, str]]:
    """The first occurrence of each ``SAFE_HEADERS`` field, unfolded to one line."""
    found: dict[str, str] = {}
    if isinstance(original, bytes):
        # Only the header block is ever decoded: the body is cut off before parsing so
        # no code path can copy it into the report.
        head = _HEADER_END_RE.split(original, maxsplit=1)[0]
        parsed = HeaderParser(policy=email.policy.compat32).parsestr(head.decode("utf-8", "replace") + "\n\n")
        for name in SAFE_HEADERS:
            value = parsed.get(name)
            if value is not None:
                found[name] = str(value)
    else:
        lowered = {key.lower(): value for key, value in original.items()}
        for name in SAFE_HEADERS:
            value = lowered.get(name.lower())
            if value is not None:
                found[name] = _one_line(name, value)
    result = []
    for name in SAFE_HEADERS:
        if name in found:
            # RFC 5322 §2.2.3: unfolding removes the CRLF before folding whitespace;
            # these four fields are structured, so the whitespace run may become one
            # space.  Any stray CR or LF left is dropped: it must not start a new line.
            unfolded = _FOLD_RE.sub(" ", found[name])
            value = unfolded.replace("\r", "").replace("\n", "")
            result.append((name, value.strip()))
    return result


def _text_part(text: str, subtype: str) -> MIMEPart:
    part = MIMEPart(policy=_POLICY)
    # Quoted-printable keeps the DSN 7-bit clean when a name or address is not ASCII,
    # so it needs no 8BITMIME from the next hop.
    cte = "7bit" if text.isascii() else "quoted-printable"
    part.set_content(text, subtype=subtype, cte=cte)
    return part


def _field_block(fields: list[tuple[str, str]]) -> Message:
    block = Message()
    for name, value in fields:
        block[name] = _fold(name, value)
    return block


def _human_text(
    reporting_mta: str, recipient: str, status: str, diagnostic: str | None, expired: bool
) -> str:
    if expired:
        why = (
            "It could not be delivered before its delivery time ran out, so the mail\n"
            "system has stopped trying."
        )
    else:
        why = "The recipient's mail system refused it permanently."
    detail = f"    {recipient}: status {status}"
    if diagnostic:
        detail += "\n" + textwrap.fill(
            f"remote server said: {diagnostic}",
            width=_FOLD_WIDTH - 2,
            initial_indent="    ",
            subsequent_indent="      ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return (
        f"This is the mail system at host {reporting_mta}.\n"
        "\n"
        "Your message could not be delivered to the recipient below.\n"
        f"{why}\n"
        "\n"
        f"{detail}\n"
        "\n"
        "The attached delivery report is for your mail administrator.  For privacy the\n"
        "original message is not included; only its Message-ID, Date, From and To\n"
        "headers are.\n"
    )


def _boundary(message_id: str, parts: list[str]) -> str:
    """A boundary derived from the DSN's Message-ID, so the output is reproducible.

    RFC 2046 §5.1.1 requires that it occur in no part; the loop makes sure of that.
    """
    seed = hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:32]
    counter = 0
    while True:
        boundary = f"=_sealmail-dsn-{seed}-{counter}"
        if not any(boundary in text for text in parts):
            return boundary
        counter += 1


def build_dsn(
    *,
    reporting_mta: str,
    original_headers: bytes | Mapping[str, str],
    recipient: str,
    status: str,
    diagnostic: str | None,
    remote_mta: str | None,
    arrival_date: datetime,
    dsn_from: str,
    to: str,
    date: datetime,
    message_id: str,
    expired: bool = False,
    last_attempt_date: datetime | None = None,
    original_recipient: str | None = None,
    envelope_id: str | None = None,
) -> bytes:
    """Build a failure DSN for one recipient, as CRLF-terminated bytes.

    ``reporting_mta`` and ``remote_mta`` are host names (``dns;`` type, RFC 3464
    §2.2.2, §2.3.5); ``remote_mta`` is None when no server was reached.  ``status`` is
    the RFC 3463 code (5.x.x for a bounce; an expired recipient usually keeps the last
    4.x.x, or 4.4.7).  ``diagnostic`` is the last SMTP reply, e.g.
    ``"550 5.1.1 user unknown"``, or None when there was none.  ``original_headers`` is
    the original message (only its header block is read) or a header mapping.
    ``dsn_from`` is the From of the report (e.g. ``MAILER-DAEMON@mta.example``), ``to``
    the original envelope sender.  ``original_recipient`` is the ORCPT and
    ``envelope_id`` the ENVID given at submission (RFC 3461), if any.

    The envelope of the DSN is the caller's: send it with ``MAIL FROM:<>``.
    """
    if not _STATUS_RE.match(status):
        raise ValueError("status must be an RFC 3463 failure code like 5.1.1 or 4.4.7")
    for name, value in (
        ("reporting_mta", reporting_mta),
        ("recipient", recipient),
        ("dsn_from", dsn_from),
        ("to", to),
        ("message_id", message_id),
    ):
        if not value:
            raise ValueError(f"{name} must not be empty")
        _one_line(name, value)
    if remote_mta is not None:
        _one_line("remote_mta", remote_mta)
    if envelope_id is not None:
        _one_line("envelope_id", envelope_id)
    _require_aware("arrival_date", arrival_date)
    _require_aware("date", date)

    diagnostic_line = _diagnostic_line(diagnostic) if diagnostic else None

    # RFC 3464 §2.2: per-message fields.
    per_message = [("Reporting-MTA", f"dns; {reporting_mta}")]
    if envelope_id is not None:
        per_message.append(("Original-Envelope-Id", envelope_id))
    per_message.append(("Arrival-Date", email.utils.format_datetime(arrival_date)))

    # RFC 3464 §2.3: per-recipient fields.  "failed" is right for an expiry too
    # (§2.3.3: the MTA will not try again); the Status carries the nuance.
    per_recipient = []
    if original_recipient is not None:
        per_recipient.append(("Original-Recipient", _xtext_address(original_recipient)))
    per_recipient += [
        ("Final-Recipient", _xtext_address(recipient)),
        ("Action", "failed"),
        ("Status", status),
    ]
    if remote_mta is not None:
        per_recipient.append(("Remote-MTA", f"dns; {remote_mta}"))
    if diagnostic_line:
        # §2.3.6: diagnostic-type "smtp" for a reply from an SMTP server.
        per_recipient.append(("Diagnostic-Code", f"smtp; {diagnostic_line}"))
    if last_attempt_date is not None:
        _require_aware("last_attempt_date", last_attempt_date)
        per_recipient.append(("Last-Attempt-Date", email.utils.format_datetime(last_attempt_date)))

    human = _human_text(reporting_mta, recipient, status, diagnostic_line, expired)
    headers_text = "".join(f"{n}: {_fold(n, v)}\n" for n, v in _safe_headers(original_headers))

    status_part = MIMEPart(policy=_POLICY)
    status_part["Content-Type"] = "message/delivery-status"
    status_part.set_payload([_field_block(per_message), _field_block(per_recipient)])

    texts = [human, headers_text, *(v for _, v in per_message + per_recipient)]
    # A MIMEPart, not an EmailMessage: the latter would stamp MIME-Version on every
    # subpart in set_content; the top level gets it explicitly below.
    report = MIMEPart(policy=_POLICY)
    report["From"] = dsn_from
    report["To"] = to
    # A fixed subject: the original Subject may carry PHI (see SAFE_HEADERS).
    report["Subject"] = (
        "Delivery expired: message not delivered" if expired else "Undelivered Mail Returned to Sender"
    )
    report["Date"] = email.utils.format_datetime(date)
    report["Message-ID"] = message_id
    # RFC 3834 §5: marks the report as machine-generated so auto-responders stay quiet.
    report["Auto-Submitted"] = "auto-replied"
    report["MIME-Version"] = "1.0"
    report["Content-Type"] = "multipart/report"
    report.set_param("report-type", "delivery-status")
    report.set_boundary(_boundary(message_id, texts))
    report.attach(_text_part(human, "plain"))
    report.attach(status_part)
    report.attach(_text_part(headers_text, "rfc822-headers"))
    return report.as_bytes(policy=_POLICY)
