"""The secure-portal notification: tells a recipient a message waits, and nothing else.

It carries no PHI by construction: the sender organisation's name, a neutral subject set
by policy, and an unguessable link.  Never the original subject, body, attachment names
or the patient's name — so it may travel where the message itself could not (a
destination without STARTTLS), and a forwarded or misdelivered notice discloses nothing.
"""

from __future__ import annotations

import binascii
import email.header
import email.utils
import html
from dataclasses import dataclass
from datetime import datetime

from sealmail.domain.display_text import safe_display
from sealmail.domain.message import one_line

DEFAULT_SUBJECT = "You have a secure message from {organization}"


@dataclass(frozen=True, slots=True)
class Notice:
    raw: bytes
    message_id: str


def build_notice(
    *,
    organization: str,
    sender: str,
    recipient: str,
    link: str,
    expires_at: datetime,
    message_id_domain: str,
    subject_template: str = DEFAULT_SUBJECT,
    date: datetime | None = None,
) -> Notice:
    """Build the notice (multipart/alternative, plain and HTML)."""
    # The organisation's name is shown to the patient: no bidi override or control in it.
    organization = safe_display(organization, 120) or "Secure messages"
    # A policy's subject saved before the API checked it for line breaks must not make
    # every notice unbuildable: its breaks become spaces.
    subject = one_line(subject_template.replace("{organization}", organization))
    message_id = email.utils.make_msgid(domain=message_id_domain)
    date_value = email.utils.format_datetime(date) if date else email.utils.formatdate(usegmt=True)
    until = expires_at.strftime("%B %d, %Y").replace(" 0", " ")
    text = (
        f"{organization} sent you a secure message.\n\n"
        f"Open it here:\n{link}\n\n"
        f"For your privacy the message is not included in this email. You will be asked to\n"
        f"confirm it is you, with a one-time code or a passphrase from the sender.\n"
        f"The link works until {until}.\n\n"
        f"If you did not expect this message, you can ignore this email.\n"
    )
    org = html.escape(organization)
    href = html.escape(link, quote=True)
    body = (
        '<!doctype html><html><body style="font-family:Arial,sans-serif;font-size:16px;'
        'line-height:1.5;color:#1a1a1a">'
        f"<p><strong>{org}</strong> sent you a secure message.</p>"
        f'<p><a href="{href}" style="display:inline-block;padding:12px 20px;background:#0b5cad;'
        'color:#ffffff;text-decoration:none;border-radius:6px">Open secure message</a></p>'
        "<p>For your privacy the message is not included in this email. You will be asked to confirm "
        "it is you, with a one-time code or a passphrase from the sender. "
        f"The link works until {html.escape(until)}.</p>"
        '<p style="color:#555">If you did not expect this message, you can ignore this email.</p>'
        "</body></html>"
    )
    # Built by hand rather than through email.message: a notice is sent for every portal
    # recipient and the stdlib generator costs several milliseconds per message.
    boundary = "=_notice_" + message_id.strip("<>").split("@", 1)[0].replace(".", "")
    from_value = email.utils.formataddr((_header_text(organization), sender))
    head = [
        f"From: {from_value}",
        f"To: {recipient}",
        f"Subject: {_header_text(subject)}",
        f"Date: {date_value}",
        f"Message-ID: {message_id}",
        # RFC 3834: an automatic message; replies go nowhere useful (use the portal's reply).
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    parts = []
    for subtype, content in (("plain", text), ("html", body)):
        qp = binascii.b2a_qp(content.replace("\n", "\r\n").encode("utf-8"), istext=False).decode("ascii")
        parts.append(
            f"--{boundary}\r\nContent-Type: text/{subtype}; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n"
        )
    raw = "\r\n".join(head) + "\r\n\r\n" + "".join(parts) + f"--{boundary}--\r\n"
    return Notice(raw=raw.encode("ascii"), message_id=message_id)


def _header_text(value: str) -> str:
    """RFC 2047 encoded-word for non-ASCII header text (an organisation's name may be)."""
    if value.isascii():
        return value
    return email.header.Header(value, "utf-8").encode()
