"""Turning a message's fields (``messages.outgoing``: an API body, or a template's per-recipient
message) into a ``Submission`` — the same shape SMTP produces."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from sealmail.domain import message as mime
from sealmail.domain.addresses import (
    Address,
    InvalidAddress,
    InvalidHeader,
    header_text_problem,
    parse_address,
    parse_address_list,
    validate_header,
)
from sealmail.domain.display_text import BIDI_CONTROLS
from sealmail.domain.intake_limits import IntakeLimits, Rule, validate_raw
from sealmail.domain.tls_policy import TlsRequirement
from sealmail.errors import MessageRefused, ValidationFailed
from sealmail.messages.outgoing import AttachmentFields, MessageFields, RawFields
from sealmail.messages.service import EnvelopeRecipient, Submission

MAX_SCHEDULE = timedelta(days=30)


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)


def _addresses(values: Sequence[str], field: str, errors: _Errors) -> tuple[Address, ...]:
    if not values:
        return ()
    try:
        return tuple(parse_address_list(values, field))
    except InvalidAddress as exc:
        errors.add(exc.field, exc.reason)
        return ()


def _b64(value: str, field: str, errors: _Errors) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        errors.add(field, "is not valid base64")
        return b""


def _times(
    send_at: datetime | None, expires_at: datetime | None, errors: _Errors
) -> tuple[datetime | None, datetime | None]:
    if send_at is None and expires_at is None:
        return None, None
    now = datetime.now(UTC)
    for name, value in (("send_at", send_at), ("expires_at", expires_at)):
        if value is not None and value.tzinfo is None:
            errors.add(name, "needs a timezone offset, e.g. 2026-01-01T09:00:00Z")
    if send_at and send_at.tzinfo and send_at > now + MAX_SCHEDULE:
        errors.add("send_at", "can be at most 30 days ahead")
    if expires_at and expires_at.tzinfo and expires_at <= now:
        errors.add("expires_at", "is in the past")
    if send_at and expires_at and send_at.tzinfo and expires_at.tzinfo and expires_at <= send_at:
        errors.add("expires_at", "must be after send_at")
    return send_at, expires_at


def _labels(tags: Sequence[str], metadata: Mapping[str, str], errors: _Errors) -> None:
    for i, tag in enumerate(tags):
        if not tag or len(tag) > 100 or any(ord(ch) < 32 for ch in tag):
            errors.add(f"tags[{i}]", "must be 1–100 printable characters")
    for key, value in metadata.items():
        if not key or len(key) > 40 or len(value) > 500:
            errors.add(f"metadata.{key}", "keys are 1–40 and values at most 500 characters")


def from_message(body: MessageFields, message_id_domain: str, max_recipients: int) -> Submission:
    errors = _Errors()
    sender = _sender(body.from_, errors)
    to = _addresses(body.to, "to", errors)
    cc = _addresses(body.cc, "cc", errors)
    bcc = _addresses(body.bcc, "bcc", errors)
    reply_to = _addresses(body.reply_to, "reply_to", errors)
    _check_counts_and_text(body, max_recipients, errors)
    headers = _headers(body.headers, errors)
    attachments = _attachments(body.attachments, errors)
    _labels(body.tags, body.metadata, errors)
    send_at, expires_at = _times(body.send_at, body.expires_at, errors)
    errors.raise_if_any()
    assert sender is not None
    draft = mime.Draft(
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=body.subject,
        text=body.text,
        html=body.html,
        attachments=attachments,
        headers=headers,
    )
    built = mime.build(draft, message_id_domain)
    return Submission(
        stream=body.stream,
        source="api",
        mail_from=sender.smtp_addr_spec,
        header_from=sender.addr_spec,
        recipients=_envelope(to, cc, bcc),
        raw=built.raw,
        message_id_header=built.message_id,
        tls_policy=body.tls_policy,
        tags=tuple(body.tags),
        metadata=dict(body.metadata),
        send_at=send_at,
        expires_at=expires_at,
        bypass_suppressions=body.bypass_suppressions,
        protection=body.protection,
    )


def _sender(value: str, errors: _Errors) -> Address | None:
    try:
        return parse_address(value, "from")
    except InvalidAddress as exc:
        errors.add(exc.field, exc.reason)
        return None


def _check_counts_and_text(body: MessageFields, max_recipients: int, errors: _Errors) -> None:
    total = len(body.to) + len(body.cc) + len(body.bcc)
    if total == 0:
        errors.add("to", "at least one recipient (to, cc or bcc) is required")
    if total > max_recipients:
        errors.add("to", f"{total} recipients; at most {max_recipients} per message")
    if body.text is None and body.html is None:
        errors.add("text", "give text, html or both")
    if not body.subject.isprintable():
        # VT, FF, FS–RS, NEL, U+2028 and U+2029 end a line for str.splitlines, which
        # email.header folds at: "x\x0bX-Injected : yes" would become a header field of its own.
        problem = header_text_problem(body.subject)
        if problem is not None:
            errors.add("subject", problem)


def _headers(given: Mapping[str, str], errors: _Errors) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for name, value in given.items():
        try:
            validate_header(name, value)
            headers.append((name, value))
        except InvalidHeader as exc:
            errors.add(exc.field, exc.reason)
    return tuple(headers)


def _attachments(given: Sequence[AttachmentFields], errors: _Errors) -> tuple[mime.Attachment, ...]:
    attachments = []
    for i, att in enumerate(given):
        data = _b64(att.content, f"attachments[{i}].content", errors)
        problem = _filename_problem(att.filename)
        if problem is not None:
            errors.add(f"attachments[{i}].filename", problem)
        attachments.append(mime.Attachment(att.filename, att.content_type, data))
    return tuple(attachments)


def _filename_problem(name: str) -> str | None:
    """Why ``name`` cannot be an attachment's file name, or None.

    It becomes header text (``Content-Disposition``'s ``filename``), so it is held to
    ``header_text_problem``; a recipient's mail client saves the file under it, so it must
    not climb directories; and a bidi control makes ``invoice<U+202E>fdp.exe`` display as
    ``invoiceexe.pdf`` (CVE-2021-42574's file-name cousin).
    """
    if any(ch in name for ch in "/\\") or name in (".", ".."):
        return "must not contain path separators or be . or .."
    if any(ch in BIDI_CONTROLS for ch in name):
        return "must not contain bidirectional control characters (U+202A–U+202E, U+2066–U+2069, marks)"
    return header_text_problem(name)


def _envelope(
    to: tuple[Address, ...], cc: tuple[Address, ...], bcc: tuple[Address, ...]
) -> tuple[EnvelopeRecipient, ...]:
    groups: tuple[tuple[Literal["to", "cc", "bcc"], tuple[Address, ...]], ...] = (
        ("to", to),
        ("cc", cc),
        ("bcc", bcc),
    )
    return tuple(
        EnvelopeRecipient(a.smtp_addr_spec, a.ascii_domain, kind) for kind, group in groups for a in group
    )


def from_raw(
    body: RawFields, message_id_domain: str, max_recipients: int, limits: IntakeLimits | None = None
) -> Submission:
    errors = _Errors()
    mail_from: Address | None = None
    if body.envelope.mail_from:
        try:
            mail_from = parse_address(body.envelope.mail_from, "envelope.mail_from")
        except InvalidAddress as exc:
            errors.add(exc.field, exc.reason)
    rcpts = _addresses(body.envelope.rcpt_to, "envelope.rcpt_to", errors)
    if len(body.envelope.rcpt_to) > max_recipients:
        errors.add("envelope.rcpt_to", f"at most {max_recipients} recipients per message")
    raw = _b64(body.message, "message", errors)
    _labels(body.tags, body.metadata, errors)
    send_at, expires_at = _times(body.send_at, body.expires_at, errors)
    if raw and b"\n\n" not in raw.replace(b"\r\n", b"\n") and b":" not in raw.split(b"\n", 1)[0]:
        errors.add("message", "is not an RFC 5322 message (no header block)")
    errors.raise_if_any()
    return submission_from_raw(
        raw,
        mail_from.smtp_addr_spec if mail_from else "",
        rcpts,
        source="api",
        message_id_domain=message_id_domain,
        limits=limits or IntakeLimits(),
        stream=body.stream,
        tls_policy=body.tls_policy,
        tags=tuple(body.tags),
        metadata=dict(body.metadata),
        send_at=send_at,
        expires_at=expires_at,
        bypass_suppressions=body.bypass_suppressions,
        protection=body.protection,
    )


def submission_from_raw(
    raw: bytes,
    mail_from: str,
    rcpts: tuple[Address, ...],
    *,
    source: str,
    message_id_domain: str,
    limits: IntakeLimits,
    requiretls: bool = False,
    **options: object,
) -> Submission:
    """Shared by the raw API endpoint and the SMTP gateway: the same bytes, the same rows.

    ``validate_raw`` runs first, before any ``email`` parser touches the bytes, so both
    doors refuse the same messages for the same ``MessageRefused.rule``.  ``requiretls``
    is the RFC 8689 MAIL parameter; it outranks a ``TLS-Required: No`` field (§4.1).
    """
    violation = validate_raw(raw, limits)
    if violation is not None:
        raise MessageRefused(violation.rule, violation.detail)
    raw = crlf_lines(raw)
    try:
        head = mime.parse_head(raw)
        facts = mime.header_facts(raw, head)
        completed, message_id = mime.complete_raw(raw, message_id_domain, facts)
    except RecursionError as exc:
        # validate_raw bounds nesting, so this is a safety net: a parser limit is a
        # property of the message (permanent), never an internal error.
        raise MessageRefused(Rule.MIME_TOO_DEEP, "the message nests too deeply to parse") from exc
    if not facts.header_from:
        raise ValidationFailed([{"field": "message", "message": "has no From header"}])
    return Submission(
        source=source,  # type: ignore[arg-type]  # "api" | "smtp", checked by callers
        mail_from=mail_from,
        header_from=facts.header_from,
        header_senders=facts.senders,
        recipients=tuple(EnvelopeRecipient(a.smtp_addr_spec, a.ascii_domain, "env") for a in rcpts),
        raw=completed,
        message_id_header=message_id,
        tls_required=_tls_requirement(requiretls, facts.tls_required_no),
        head=head,
        **options,  # type: ignore[arg-type]  # keyword fields of Submission
    )


def crlf_lines(raw: bytes) -> bytes:
    """``raw`` with every bare LF made CRLF (CRLF and bare CR as they are)."""
    if raw.count(b"\n") == raw.count(b"\r\n"):
        # No bare LF (as SMTP delivers): nothing to change, and counting costs less than
        # the two copies below.
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _tls_requirement(requiretls: bool, tls_required_no: bool) -> TlsRequirement | None:
    if requiretls:
        return TlsRequirement.REQUIRETLS
    return TlsRequirement.NOT_REQUIRED if tls_required_no else None
