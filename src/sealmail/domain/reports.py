"""Reading inbound reports: RFC 3464 delivery status notifications and RFC 5965 ARF.

Both are ``multipart/report`` (RFC 6522): a human-readable part, a machine-readable part
(``message/delivery-status`` or ``message/feedback-report``) and, usually, the original
message or its headers (``message/rfc822``, ``text/rfc822-headers``).  ``parse`` turns the
bytes into a value — a ``Dsn``, an ``Arf`` or an ``Unrecognized`` with a reason token —
and never raises on what a remote system sent.

Only identifiers and status fields are kept: from the returned original, the headers that
lead back to our recipient (Return-Path, our trace header, To, Message-ID); never the
subject or any body, which in healthcare mail is PHI.

Reports that are not RFC 3464 (old qmail, some appliances) get a small fallback: a
message from the null sender or from MAILER-DAEMON/postmaster whose text carries an
RFC 3463 code is read as one failed (5.x.x) or delayed (4.x.x) recipient, flagged
``heuristic``.  Auto-replies (RFC 3834 ``Auto-Submitted``) are never bounces.

Pure: no clock, no I/O; stdlib ``email`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import Final

from sealmail.domain.intake_limits import MAX_PARAMETERS

__all__ = [
    "MAX_PARSE_BYTES",
    "Arf",
    "DeliveryStatus",
    "Dsn",
    "Original",
    "Unrecognized",
    "parse",
]

# A DSN that returns the full original can be as big as that message; everything this
# module reads (the status fields and the original's headers) comes first, so parsing
# stops here and a truncated tail only costs the body we never keep anyway.
MAX_PARSE_BYTES: Final = 1024 * 1024
# Bounds on what is kept from remote free text (RFC 5321 §4.5.3.1.5 reply lines are 512).
_MAX_TEXT: Final = 500
_MAX_RECIPIENTS: Final = 100

_STATUS_RE: Final = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ACTIONS: Final = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_DSN_TYPES: Final = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ARF_TYPES: Final = frozenset({"message/feedback-report"})
_ORIGINAL_TYPES: Final = frozenset({"message/rfc822", "message/global"})
_ORIGINAL_HEADER_TYPES: Final = frozenset({"text/rfc822-headers", "message/global-headers"})
_DAEMONS: Final = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})


@dataclass(frozen=True, slots=True)
class Original:
    """What the returned original says about who it was for (headers only)."""

    return_path: str | None = None
    trace_id: str | None = None
    to: tuple[str, ...] = ()
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """One per-recipient block of a DSN (RFC 3464 §2.3)."""

    action: str  # failed | delayed | delivered | relayed | expanded
    status: str | None  # RFC 3463 "5.1.1"; None when absent or malformed
    final_recipient: str | None = None  # the address, its address-type removed
    original_recipient: str | None = None
    diagnostic: str | None = None  # Diagnostic-Code text, its diagnostic-type removed
    remote_mta: str | None = None  # the MTA name, its mta-name-type removed


@dataclass(frozen=True, slots=True)
class Dsn:
    recipients: tuple[DeliveryStatus, ...]
    reporting_mta: str | None = None
    original: Original | None = None
    heuristic: bool = False


@dataclass(frozen=True, slots=True)
class Arf:
    """An RFC 5965 feedback report."""

    feedback_type: str  # abuse | fraud | virus | other | not-spam | auth-failure | …
    user_agent: str | None = None
    original_mail_from: str | None = None
    original_rcpt_to: tuple[str, ...] = ()
    original: Original | None = None


@dataclass(frozen=True, slots=True)
class Unrecognized:
    reason: str  # not_a_report | auto_reply | unparsable


Report = Dsn | Arf | Unrecognized


def _clean(value: object | None, limit: int = _MAX_TEXT) -> str | None:
    """A header value unfolded to one printable line, bounded; None when empty."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    text = "".join(ch if " " <= ch <= "~" or ch > "\x7f" else "?" for ch in text)
    return text[:limit] or None


def _typed(value: object | None) -> str | None:
    """``rfc822; jane@example.org`` → ``jane@example.org`` (RFC 3464 §2.3.2 address-type)."""
    text = _clean(value)
    if text is None:
        return None
    _, sep, rest = text.partition(";")
    return (rest.strip() if sep else text) or None


def _address(value: object | None) -> str | None:
    text = _typed(value)
    if text is None:
        return None
    addr = parseaddr(text)[1] or text.strip("<>")
    return addr.lower() or None


def _status(value: object | None) -> str | None:
    text = _clean(value)
    match = _STATUS_RE.search(text or "")
    return ".".join(match.groups()) if match else None


def _payload_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _split_blocks(text: str) -> list[Message]:
    parser = HeaderParser(policy=compat32)
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [parser.parsestr(b.strip() + "\n") for b in blocks if b.strip()]


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` or ``message/feedback-report`` part.

    The stdlib parser splits ``message/delivery-status`` into one ``Message`` per block;
    other ``message/*`` types (``feedback-report``, RFC 6533 ``global-delivery-status``)
    come back as one ``Message`` whose body holds the remaining blocks, and anything
    else as text.  All three end up as a list of blocks here.
    """
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _split_blocks(_payload_text(part))
    blocks: list[Message] = []
    for item in payload:
        if isinstance(item, Message):
            blocks.append(item)
            rest = item.get_payload()
            if isinstance(rest, str) and rest.strip():
                blocks += _split_blocks(rest)
    return blocks


def _original(part: Message, trace_header: str) -> Original:
    ctype = part.get_content_type()
    if ctype in _ORIGINAL_TYPES:
        payload = part.get_payload()
        headers = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(headers, Message):
            headers = HeaderParser(policy=compat32).parsestr(_payload_text(part))
    else:
        headers = HeaderParser(policy=compat32).parsestr(_payload_text(part))
    to = tuple(a.lower() for _, a in getaddresses([str(v) for v in headers.get_all("To", [])]) if a)[
        :_MAX_RECIPIENTS
    ]
    return Original(
        return_path=_address(headers.get("Return-Path")),
        trace_id=_clean(headers.get(trace_header), 60),
        to=to,
        message_id=_clean(headers.get("Message-ID"), 400),
    )


def _find(msg: Message, types: frozenset[str]) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() in types:
            return part
    return None


def _dsn(msg: Message, status_part: Message, trace_header: str) -> Report:
    blocks = _field_blocks(status_part)
    if not blocks:
        return Unrecognized("unparsable")
    per_message, per_recipient = blocks[0], blocks[1:]
    recipients = []
    for block in per_recipient[:_MAX_RECIPIENTS]:
        action = (_clean(block.get("Action")) or "").lower().split(" ")[0]
        if action not in _ACTIONS:
            continue
        recipients.append(
            DeliveryStatus(
                action=action,
                status=_status(block.get("Status")),
                final_recipient=_address(block.get("Final-Recipient")),
                original_recipient=_address(block.get("Original-Recipient")),
                diagnostic=_typed(block.get("Diagnostic-Code")),
                remote_mta=_typed(block.get("Remote-MTA")),
            )
        )
    if not recipients:
        return Unrecognized("unparsable")
    original = _find(msg, _ORIGINAL_TYPES | _ORIGINAL_HEADER_TYPES)
    return Dsn(
        recipients=tuple(recipients),
        reporting_mta=_typed(per_message.get("Reporting-MTA")),
        original=_original(original, trace_header) if original is not None else None,
    )


def _arf(msg: Message, report_part: Message, trace_header: str) -> Report:
    blocks = _field_blocks(report_part)
    if not blocks:
        return Unrecognized("unparsable")
    fields = blocks[0]
    feedback_type = (_clean(fields.get("Feedback-Type"), 40) or "").lower()
    if not feedback_type:
        return Unrecognized("unparsable")
    rcpts = tuple(a for a in (_address(v) for v in fields.get_all("Original-Rcpt-To", [])) if a)
    original = _find(msg, _ORIGINAL_TYPES | _ORIGINAL_HEADER_TYPES)
    return Arf(
        feedback_type=feedback_type,
        user_agent=_clean(fields.get("User-Agent"), 100),
        original_mail_from=_address(fields.get("Original-Mail-From")),
        original_rcpt_to=rcpts[:_MAX_RECIPIENTS],
        original=_original(original, trace_header) if original is not None else None,
    )


def _first_text(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return _payload_text(part)[:20_000]
    return ""


def _heuristic(msg: Message, null_sender: bool, trace_header: str) -> Report:
    """A non-standard bounce: from the null sender or a mailer daemon, with a status code."""
    sender = parseaddr(str(msg.get("From", "")))[1].lower()
    from_daemon = sender.split("@", 1)[0] in _DAEMONS
    if not (null_sender or from_daemon):
        return Unrecognized("not_a_report")
    text = _first_text(msg)
    match = _STATUS_RE.search(text)
    if match is None:
        return Unrecognized("not_a_report")
    status = ".".join(match.groups())
    # The line carrying the code is the closest thing to a Diagnostic-Code.
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    line = _clean(text[start : end if end != -1 else None])
    action = "failed" if status.startswith("5") else "delayed" if status.startswith("4") else "delivered"
    original = _find(msg, _ORIGINAL_TYPES | _ORIGINAL_HEADER_TYPES)
    return Dsn(
        recipients=(DeliveryStatus(action=action, status=status, diagnostic=line),),
        original=_original(original, trace_header) if original is not None else None,
        heuristic=True,
    )


def _parameter_bomb(raw: bytes) -> bool:
    """Whether a Content-Type or Content-Disposition field (a line starting one, and its folds)
    has more than ``MAX_PARAMETERS`` semicolons, wherever it stands.

    The email package splits parameters by rescanning the value from its start at every
    ";": a megabyte field of quoted semicolons cost minutes of a thread per report (the
    parser reads every multipart's boundary), and a report has no header limits of its own.
    """
    count = 0
    counting = False
    for line in raw.splitlines():
        if line[:1] in (b" ", b"\t"):
            count += line.count(b";") if counting else 0
        else:
            head = line[:20].lower()
            counting = head.startswith(b"content-type:") or head == b"content-disposition:"
            count = line.count(b";") if counting else 0
        if count > MAX_PARAMETERS:
            return True
    return False


def parse(
    raw: bytes,
    *,
    trace_header: str,
    null_sender: bool = False,
    limit: int = MAX_PARSE_BYTES,
) -> Report:
    """Read one inbound report; never raises on what a remote system sent.

    ``trace_header`` is the header our outbound copies carry the message id in;
    ``null_sender`` says the report came with ``MAIL FROM:<>`` (RFC 3464 §2 requires it
    of DSNs), which the fallback for non-standard bounces counts as evidence.
    """
    raw = raw[:limit]
    if _parameter_bomb(raw):
        return Unrecognized("unparsable")
    try:
        msg = message_from_bytes(raw, policy=compat32)
        return _report(msg, trace_header, null_sender)
    except Exception:  # noqa: BLE001 — the stdlib is lenient, but not everywhere: garbage in
        # The address parser recurses on nested comments (RecursionError on a field of a few
        # thousand "("); any such failure is a property of the bytes, not a fault here.  An
        # exception would answer the sending MTA 451 and it would retry the same bytes.
        return Unrecognized("unparsable")


def _report(msg: Message, trace_header: str, null_sender: bool) -> Report:
    if msg.get_content_type() == "multipart/report":
        report_type = str(msg.get_param("report-type") or "").lower()
        status_part = _find(msg, _DSN_TYPES)
        if status_part is not None and report_type != "feedback-report":
            return _dsn(msg, status_part, trace_header)
        arf_part = _find(msg, _ARF_TYPES)
        if arf_part is not None:
            return _arf(msg, arf_part, trace_header)
    # RFC 3834 §5: vacation and other automatic replies go to the Return-Path too.  Only
    # here: Postfix and Gmail mark their (standard) DSNs auto-replied as well.
    auto = (_clean(msg.get("Auto-Submitted"), 40) or "no").lower()
    if auto.startswith("auto-replied"):
        return Unrecognized("auto_reply")
    return _heuristic(msg, null_sender, trace_header)
