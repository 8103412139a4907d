"""The secure-portal notification: tells a recipient a message waits, and nothing else.

It carries no PHI by construction: the sender organisation's name, a neutral subject set
by policy, and an unguessable link.  Never the original subject, body, attachment names
or the patient's name — so it may travel where the message itself could not (a
destination without STARTTLS), and a forwarded or misdelivered notice discloses nothing.
"""

from __future__ import annotations

import email.policy
import email.utils
import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

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
    subject = subject_template.replace("{organization}", organization)
    if any(ch in subject for ch in "\r\n"):
        raise ValueError("notice subject must be one line")
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = email.utils.formataddr((organization, sender))
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(date) if date else email.utils.formatdate(usegmt=True)
    message_id = email.utils.make_msgid(domain=message_id_domain)
    msg["Message-ID"] = message_id
    # RFC 3834: an automatic message; replies go nowhere useful (use the portal's reply).
    msg["Auto-Submitted"] = "auto-generated"
    until = expires_at.strftime("%B %d, %Y").replace(" 0", " ")
    text = (
        f"{organization} sent you a secure message.\n\n"
        f"Open it here:\n{link}\n\n"
        f"For your privacy the message is not included in this email. You will be asked for a\n"
        f"one-time code that we send to this address. The link works until {until}.\n\n"
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
        "<p>For your privacy the message is not included in this email. You will be asked for "
        f"a one-time code that we send to this address. The link works until {html.escape(until)}.</p>"
        '<p style="color:#555">If you did not expect this message, you can ignore this email.</p>'
        "</body></html>"
    )
    msg.set_content(text)
    msg.add_alternative(body, subtype="html")
    return Notice(raw=msg.as_bytes(), message_id=message_id)
