"""Message value objects and MIME building/parsing.

Mail from the API is turned into RFC 5322 bytes at intake, so everything downstream
(store, SecureLine, MTA) handles one shape whether the message came by API or SMTP.
"""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

from sealmail.domain.addresses import Address


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
    needs_utf8 = any(a.needs_smtputf8 for a in (draft.sender, *draft.to, *draft.cc, *draft.reply_to))
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
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(
            att.data, maintype=maintype, subtype=subtype or "octet-stream", filename=att.filename
        )
    return Built(raw=msg.as_bytes(), message_id=message_id, needs_smtputf8=needs_utf8)


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What intake needs from a raw message's header block."""

    header_from: str
    message_id: str | None
    has_date: bool


def header_facts(raw: bytes) -> HeaderFacts:
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    from_values = headers.get_all("From") or []
    from_addr = ""
    if from_values:
        parsed = email.utils.getaddresses([str(from_values[0])])
        from_addr = parsed[0][1] if parsed else ""
    mid = headers.get("Message-ID")
    return HeaderFacts(
        header_from=from_addr,
        message_id=str(mid).strip() if mid else None,
        has_date=headers.get("Date") is not None,
    )


def complete_raw(raw: bytes, message_id_domain: str) -> tuple[bytes, str]:
    """Add Message-ID and Date when the submitter left them out (RFC 5322 §3.6).

    The header block is only prepended to, never re-serialized, so a DKIM signature
    the submitter already applied stays valid.
    """
    facts = header_facts(raw)
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


def parse_content(raw: bytes) -> Content:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    attachments = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True)
        attachments.append(
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "size": len(payload) if isinstance(payload, bytes) else 0,
            }
        )
    return Content(
        subject=str(msg.get("Subject", "")),
        from_=str(msg.get("From", "")),
        to=[str(v) for v in msg.get_all("To", [])],
        cc=[str(v) for v in msg.get_all("Cc", [])],
        text=text_part.get_content() if text_part is not None else None,
        html=html_part.get_content() if html_part is not None else None,
        attachments=attachments,
    )
