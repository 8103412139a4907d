"""Message value objects and MIME building/parsing.

Mail from the API is turned into RFC 5322 bytes at intake, so everything downstream
(store, SecureLine, MTA) handles one shape whether the message came by API or SMTP.
"""

from __future__ import annotations

import binascii
import email.header
import email.policy
import email.utils
import functools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from typing import Any

from sealmail.domain import mail_view
from sealmail.domain.addresses import LINE_BREAKS, Address

# Our message id on every copy we send: the capture sink and report parsing (DSN/ARF)
# match a copy back to its message by it.
TRACE_HEADER = "X-Sealmail-Message-Id"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A structured message as the API receives it, already validated."""

    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    date: datetime | None = None


@dataclass(frozen=True, slots=True)
class Built:
    raw: bytes
    message_id: str
    needs_smtputf8: bool


def _header_address(addr: Address, utf8: bool) -> HeaderAddress:
    # The unquoted local part: HeaderAddress quotes it again where RFC 5322 needs it.
    # Without SMTPUTF8 the domain must be its A-label; an encoded-word is not allowed
    # inside an addr-spec (RFC 2047 §5).
    return HeaderAddress(
        display_name=addr.display_name or "",
        username=addr.local_part,
        domain=addr.domain if utf8 else addr.ascii_domain,
    )


def build(draft: Draft, message_id_domain: str) -> Built:
    """Build RFC 5322 bytes.  Bcc recipients never appear in the headers."""
    _refuse_line_breaks(draft)
    needs_utf8 = any(a.needs_smtputf8 for a in (draft.sender, *draft.to, *draft.cc, *draft.reply_to))
    if not needs_utf8 and not draft.attachments:
        return _build_simple(draft, message_id_domain)
    policy = email.policy.SMTPUTF8 if needs_utf8 else email.policy.SMTP
    msg = EmailMessage(policy=policy)
    msg["From"] = _header_address(draft.sender, needs_utf8)
    if draft.to:
        msg["To"] = [_header_address(a, needs_utf8) for a in draft.to]
    if draft.cc:
        msg["Cc"] = [_header_address(a, needs_utf8) for a in draft.cc]
    if draft.reply_to:
        msg["Reply-To"] = [_header_address(a, needs_utf8) for a in draft.reply_to]
    msg["Subject"] = draft.subject
    msg["Date"] = (
        email.utils.format_datetime(draft.date) if draft.date else email.utils.formatdate(usegmt=True)
    )
    message_id = email.utils.make_msgid(domain=message_id_domain)
    msg["Message-ID"] = message_id
    for name, value in draft.headers:
        msg[name] = value
    if draft.text is not None and draft.html is not None:
        msg.set_content(draft.text)
        msg.add_alternative(draft.html, subtype="html")
    elif draft.html is not None:
        msg.set_content(draft.html, subtype="html")
    else:
        msg.set_content(draft.text or "")
    for att in draft.attachments:
        maintype, _, subtype = attachment_type(att.content_type).partition("/")
        msg.add_attachment(
            att.data, maintype=maintype, subtype=subtype or "octet-stream", filename=att.filename
        )
    return Built(raw=msg.as_bytes(), message_id=message_id, needs_smtputf8=needs_utf8)


# -- the common case without the email package ---------------------------------------------
# Text and/or HTML without attachments is most of what the API sends; building it with the
# stdlib generator costs several milliseconds per message (it dominated bulk sends), so it
# is written directly here.  Anything else (attachments, SMTPUTF8) takes the general path.


# NUL and every character ``str.splitlines`` ends a line at (``addresses.LINE_BREAKS``):
# ``email.header`` folds at those, so one in a subject became a header field of its own.
# Intake refuses every control in a header (``header_text_problem``); this is the builder's
# own guard, the same for both of its paths.
_LINE_BREAKING = "\0" + LINE_BREAKS


_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+", re.ASCII)


def attachment_type(content_type: str) -> str:
    """``content_type`` when it can head a leaf part, else ``application/octet-stream``.

    An attachment's type may come from a reader's browser (a portal reply's upload) as
    well as from a checked API field: anything but ``type/subtype`` tokens (a line break
    would be header injection), or a container type (``multipart/*``, ``message/*``: the
    part would claim a structure its bytes do not have), is sent as opaque bytes.
    """
    if _MEDIA_TYPE.fullmatch(content_type) is None:
        return "application/octet-stream"
    if content_type.lower().startswith(("multipart/", "message/")):
        return "application/octet-stream"
    return content_type


def one_line(text: str) -> str:
    """``text`` as one header line: NUL, C0/C1 controls and line breaks each become a space.

    For header text Sealmail derives rather than takes from a client (a reply's
    ``Re:`` subject from the original's decoded one): it cannot be refused, so it is made
    safe instead of making the builder refuse it.  Runs of whitespace become one space;
    other characters ``isprintable`` calls unprintable (a zero-width joiner in an emoji)
    stay.
    """
    if text.isprintable():
        return text
    return " ".join("".join(" " if _breaks_a_line(ch) else ch for ch in text).split())


def _breaks_a_line(ch: str) -> bool:
    return ch in _LINE_BREAKING or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F


def _refuse_line_breaks(draft: Draft) -> None:
    """The builder's own guard on every text that becomes header text, for both paths.

    Without it the stdlib path raised its own ``ValueError`` for some (U+2028 in a
    subject) and folded others into a new line (VT in a file name), while the direct path
    encoded them: the same draft must not be refused by one path and built by the other.
    """
    names = (a.display_name or "" for a in (draft.sender, *draft.to, *draft.cc, *draft.reply_to))
    texts = (draft.subject, *names, *(v for _, v in draft.headers), *(a.filename for a in draft.attachments))
    if any(ch in text for text in texts for ch in _LINE_BREAKING):
        raise ValueError("header values must not contain CR, LF, NUL or another line-breaking control")


def _encoded(value: str) -> str:
    """A header value: RFC 2047 encoded-words when not ASCII, folded to 78 columns."""
    if any(ch in value for ch in _LINE_BREAKING):
        raise ValueError("header values must not contain CR, LF, NUL or another line-breaking control")
    if len(value) <= 76 and value.isascii() and value.isprintable():
        # What ``Header.encode`` returns for printable ASCII that fits its 76 columns: the
        # value itself (tests/unit/domain/test_message_build.py compares the two).
        return value
    charset = "us-ascii" if value.isascii() else "utf-8"
    return email.header.Header(value, charset, maxlinelen=76).encode(linesep="\r\n")


def _address_header(addrs: tuple[Address, ...]) -> str:
    return ",\r\n ".join(map(_rendered_address, addrs))


# A sender's address (and a bulk list's recipients) repeat on every message; rendering one
# (quoting, an encoded-word for a non-ASCII name) is pure, so the last few thousand are kept.
@functools.lru_cache(maxsize=4096)
def _rendered_address(a: Address) -> str:
    spec = f"{_quoted_local(a.local_part)}@{a.ascii_domain}"
    return email.utils.formataddr((a.display_name or "", spec), charset="utf-8")


_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")


def _quoted_local(local: str) -> str:
    # RFC 5322 §3.4.1 dot-atom, else a quoted-string.
    parts = local.split(".")
    if all(p and _ATEXT.issuperset(p) for p in parts):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fits_7bit(normalized: str) -> bool:
    """ASCII with no line over 900 characters (RFC 5322 §2.1.1 allows 998)."""
    return normalized.isascii() and (len(normalized) <= 900 or max(map(len, normalized.split("\n"))) <= 900)


def _body_part(text: str, subtype: str) -> bytes:
    """Content headers + body: 7bit when it is plain short-lined ASCII, else quoted-printable."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    if _fits_7bit(normalized):
        cte, body = "7bit", normalized.encode("ascii")
    else:
        cte = "quoted-printable"
        body = binascii.b2a_qp(normalized.encode("utf-8"), istext=True)
    if not body.endswith(b"\n"):
        body += b"\n"
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    return head.encode("ascii") + body.replace(b"\n", b"\r\n")


_last_date: tuple[int, str] = (0, "")


def _now_date() -> str:
    """``formatdate(usegmt=True)`` for now, formatted once a second (it shows whole seconds)."""
    global _last_date
    second = int(time.time())
    if _last_date[0] != second:
        _last_date = (second, email.utils.formatdate(second, usegmt=True))
    return _last_date[1]


def _build_simple(draft: Draft, message_id_domain: str) -> Built:
    message_id = email.utils.make_msgid(domain=message_id_domain)
    date = email.utils.format_datetime(draft.date) if draft.date else _now_date()
    head = [f"From: {_address_header((draft.sender,))}"]
    if draft.to:
        head.append(f"To: {_address_header(draft.to)}")
    if draft.cc:
        head.append(f"Cc: {_address_header(draft.cc)}")
    if draft.reply_to:
        head.append(f"Reply-To: {_address_header(draft.reply_to)}")
    head += [f"Subject: {_encoded(draft.subject)}", f"Date: {date}", f"Message-ID: {message_id}"]
    head += [f"{name}: {_encoded(value)}" for name, value in draft.headers]
    head.append("MIME-Version: 1.0")
    if draft.text is not None and draft.html is not None:
        boundary = "=_sm_" + message_id.strip("<>").split("@", 1)[0].replace(".", "_")[-24:]
        raw = (
            "\r\n".join(head).encode("utf-8")
            + f'\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
            + f"--{boundary}\r\n".encode()
            + _body_part(draft.text, "plain")
            + f"--{boundary}\r\n".encode()
            + _body_part(draft.html, "html")
            + f"--{boundary}--\r\n".encode()
        )
    else:
        part = (
            _body_part(draft.html, "html")
            if draft.html is not None
            else _body_part(draft.text or "", "plain")
        )
        raw = "\r\n".join(head).encode("utf-8") + b"\r\n" + part
    return Built(raw=raw, message_id=message_id, needs_smtputf8=False)


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What intake needs from a raw message's header block."""

    header_from: str
    message_id: str | None
    has_date: bool
    # Every mailbox of every From and Sender field (RFC 5322 §3.6.2: From may list
    # several authors); each must be on a verified domain, not only the first.
    senders: tuple[str, ...] = ()
    # RFC 8689 §5: "TLS-Required: No" (its one defined value; compared without case).
    tls_required_no: bool = False


def header_block(raw: bytes) -> bytes:
    """``raw`` up to and including its first empty line: all the header parser reads.

    Given the whole message, ``BytesHeaderParser`` still decodes and splits the body into
    lines only to keep it as a payload nobody reads — most of its cost on a 5 KB message.
    """
    end = raw.find(b"\n\r\n")
    # A "LF LF" from there on would need an LF where that one has its CR: the search for
    # one stops there, rather than reading all of a body that has none (most mail).
    lf = raw.find(b"\n\n", 0, end + 1 if end >= 0 else len(raw))
    if lf >= 0:
        end = lf
    if end < 0:
        return raw
    return raw[: end + (2 if raw[end + 1 : end + 2] == b"\n" else 3)]


# Longer fields are parsed every time, so the remembered ones stay small.
_REMEMBERED_FIELD_CHARS = 1000


@functools.lru_cache(maxsize=1024)
def _remembered_mailboxes(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(email.utils.getaddresses(list(values)))


def _mailboxes(values: list[str]) -> tuple[tuple[str, str], ...]:
    """``email.utils.getaddresses(values)``, remembered for short fields.

    A sender's From and Sender fields repeat from message to message, and the parse (the
    ``email._parseaddr`` tokenizer, character by character) is pure and cost 40 % of this
    module's part of intake.
    """
    if sum(len(v) for v in values) > _REMEMBERED_FIELD_CHARS:
        return tuple(email.utils.getaddresses(values))
    return _remembered_mailboxes(tuple(values))


def parse_head(raw: bytes) -> Message:
    """``raw``'s header block parsed (compat32, no payload): what ``header_facts`` reads,
    and what DLP's ``extract`` may take instead of parsing the same block again."""
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(header_block(raw))


def header_facts(raw: bytes, head: Message | None = None) -> HeaderFacts:
    """``head``: ``parse_head(raw)`` when the caller has it already."""
    headers = head if head is not None else parse_head(raw)
    from_values = [str(v) for v in headers.get_all("From") or []]
    from_addr = ""
    if from_values:
        parsed = _mailboxes([from_values[0]])
        from_addr = parsed[0][1] if parsed else ""
    sender_values = [str(v) for v in headers.get_all("Sender") or []]
    senders = tuple(addr for _, addr in _mailboxes(from_values + sender_values))
    mid = headers.get("Message-ID")
    return HeaderFacts(
        header_from=from_addr,
        message_id=str(mid).strip() if mid else None,
        has_date=headers.get("Date") is not None,
        senders=senders,
        tls_required_no=[str(v).strip().lower() for v in headers.get_all("TLS-Required") or []] == ["no"],
    )


def complete_raw(raw: bytes, message_id_domain: str, facts: HeaderFacts | None = None) -> tuple[bytes, str]:
    """Add Message-ID and Date when the submitter left them out (RFC 5322 §3.6).

    The header block is only prepended to, never re-serialized, so a DKIM signature
    the submitter already applied stays valid.  ``facts``: ``header_facts(raw)`` when the
    caller has it already (prepending Message-ID and Date changes no From or Sender).
    """
    facts = facts or header_facts(raw)
    extra = b""
    message_id = facts.message_id
    if not message_id:
        message_id = email.utils.make_msgid(domain=message_id_domain)
        extra += b"Message-ID: " + message_id.encode() + b"\r\n"
    if not facts.has_date:
        extra += b"Date: " + email.utils.formatdate(usegmt=True).encode() + b"\r\n"
    return extra + raw, message_id


@dataclass(slots=True)
class Content:
    """A decrypted message laid out for the API's content endpoint."""

    subject: str
    from_: str
    to: list[str]
    cc: list[str]
    text: str | None
    html: str | None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # Display limits the message went over (mail_view reasons); empty for ordinary mail.
    problems: list[str] = field(default_factory=list)


def parse_content(raw: bytes) -> Content:
    """The API's layout of ``raw``, read within :data:`mail_view.LIMITS` (issue 11.2)."""
    seen = mail_view.view(raw)
    return Content(
        subject=seen.header("subject"),
        from_=seen.header("from"),
        to=list(seen.header_all("to")),
        cc=list(seen.header_all("cc")),
        text=seen.text,
        html=seen.html,
        attachments=[
            {
                "filename": part.filename,
                "content_type": part.content_type,
                "size": len(part.data),
                **({"undisplayed": True} if part.undisplayed else {}),
            }
            for part in seen.attachments
        ],
        problems=seen.problems,
    )
