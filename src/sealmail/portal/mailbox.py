"""What a signed-in recipient can do: list, read, download, reply.

Every read of content decrypts through the keyring and writes an audit entry in the same
transaction that records the event (one write path per state change).  Access is
decided by ``Session.may_open``: same tenant, same address, and the passphrase when the
sender set one — a hold of another tenant is indistinguishable from a missing one.
"""

from __future__ import annotations

import dataclasses
import email.utils
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.audit import AuditAction
from sealmail.domain import mail_view
from sealmail.domain import message as mime
from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.tls_policy import Stream
from sealmail.ids import new_id
from sealmail.messages.service import EnvelopeRecipient, Messages, Submission
from sealmail.portal.access import (
    Hold,
    LinkState,
    PortalAccess,
    Session,
    hold_query,
    record_audit,
    to_hold,
)
from sealmail.portal.tables import portal_replies
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import messages, portal_messages, tenants
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Principal

UNREADABLE_SUBJECT = "(this message could not be displayed)"


# A file of a letter; ``undisplayed`` marks content over a display limit, offered as a download.
Part = mail_view.ViewPart


@dataclass(slots=True)
class Letter:
    """A decrypted message as the reader sees it."""

    subject: str
    sender: str
    date: datetime | None
    text: str | None
    html: str | None
    attachments: list[Part] = field(default_factory=list)
    message_id_header: str = ""
    reply_to: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def undisplayed(self) -> list[tuple[int, Part]]:
        """Attachments (with their download index) that stand in for undisplayable content."""
        return [(i, p) for i, p in enumerate(self.attachments) if p.undisplayed]


@dataclass(frozen=True, slots=True)
class InboxItem:
    hold: Hold
    state: LinkState
    subject: str
    sender: str
    date: datetime | None


@dataclass(frozen=True, slots=True)
class Thread:
    hold: Hold
    letter: Letter
    replies: list[Letter]


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse_letter(raw: bytes) -> Letter:
    """The reader's layout of ``raw``, within :data:`mail_view.LIMITS` (issue 11.2)."""
    seen = mail_view.view(raw)
    return Letter(
        subject=seen.header("subject"),
        sender=seen.header("from"),
        date=_date(seen.header("date")),
        text=seen.text,
        html=seen.html,
        attachments=seen.attachments,
        message_id_header=seen.header("message-id"),
        reply_to=seen.header("reply-to"),
        problems=seen.problems,
    )


def _inbox_summary(raw: bytes | None) -> tuple[str, str, datetime | None]:
    """Subject, sender and date for a list page: headers only, and never an error.

    One message that cannot be read must not take the reader's other messages with it.
    """
    if not raw:
        return "", "", None
    try:
        seen = mail_view.headers_only(raw)
        return seen.header("subject"), seen.header("from"), _date(seen.header("date"))
    except Exception:  # noqa: BLE001 -- any failure of one message degrades to a placeholder row
        return UNREADABLE_SUBJECT, "", None


class Mailbox:
    def __init__(self, access: PortalAccess, keyring: Keyring, messages_service: Messages) -> None:
        self.access = access
        self.engine = access.engine
        self.keyring = keyring
        self.messages = messages_service

    def _decrypt(self, conn: Connection, tenant_id: str, message_id: str) -> bytes | None:
        row = conn.execute(
            sa.select(messages.c.tenant_key_id, messages.c.wrapped_data_key, messages.c.content).where(
                messages.c.id == message_id, messages.c.tenant_id == tenant_id
            )
        ).first()
        if row is None or row.wrapped_data_key is None:
            return None  # crypto-shredded: the content no longer exists
        return self.keyring.open(tenant_id, message_id, row.tenant_key_id, row.wrapped_data_key, row.content)

    def inbox(self, session: Session) -> list[InboxItem]:
        """Every hold for this address in this tenant, newest first (never another tenant's)."""
        now = self.access.now()
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                hold_query()
                .where(
                    portal_messages.c.tenant_id == session.tenant_id,
                    sa.func.lower(portal_messages.c.address) == session.address,
                )
                .order_by(portal_messages.c.created_at.desc())
            ).all()
            items = []
            for row in rows:
                hold = to_hold(row)
                if not session.may_open(hold):
                    continue
                state = hold.state(now)
                raw = (
                    self._decrypt(conn, hold.tenant_id, hold.message_id) if state is LinkState.OPEN else None
                )
                items.append(InboxItem(hold, state, *_inbox_summary(raw)))
        return items

    def _open_hold(self, conn: Connection, session: Session, hold_id: str) -> Hold | None:
        hold = self.access.hold(conn, hold_id, session.tenant_id)
        if hold is None or not session.may_open(hold):
            return None
        return hold

    def status(self, session: Session, hold_id: str) -> LinkState | None:
        """The hold's state for this reader, or None when it is not theirs to see."""
        with db.reader(self.engine) as conn:
            hold = self._open_hold(conn, session, hold_id)
        return hold.state(self.access.now()) if hold else None

    def read(self, session: Session, hold_id: str, *, record: bool = True) -> Thread | None:
        """Decrypt a message and its replies; audit the view, emit ``portal.viewed`` once."""
        now = self.access.now()
        with self.engine.begin() as conn:
            hold = self._open_hold(conn, session, hold_id)
            if hold is None or hold.state(now) is not LinkState.OPEN:
                return None
            raw = self._decrypt(conn, hold.tenant_id, hold.message_id)
            if raw is None:
                return None
            if record:
                record_audit(
                    conn,
                    AuditAction.PORTAL_VIEWED,
                    session.actor,
                    hold.tenant_id,
                    hold.message_id,
                    hold=hold.id,
                )
            if record and hold.viewed_at is None:
                conn.execute(
                    sa.update(portal_messages).where(portal_messages.c.id == hold.id).values(viewed_at=now)
                )
                self._emit(conn, hold, ev.EventType.PORTAL_VIEWED, {}, now)
            reply_ids = conn.execute(
                sa.select(portal_replies.c.reply_message_id)
                .where(
                    portal_replies.c.portal_message_id == hold.id,
                    portal_replies.c.tenant_id == hold.tenant_id,
                )
                .order_by(portal_replies.c.created_at)
            ).scalars()
            replies = [
                parse_letter(r) for r in (self._decrypt(conn, hold.tenant_id, i) for i in reply_ids) if r
            ]
        return Thread(hold, parse_letter(raw), replies)

    def attachment(self, session: Session, hold_id: str, index: int) -> Part | None:
        now = self.access.now()
        with self.engine.begin() as conn:
            hold = self._open_hold(conn, session, hold_id)
            if hold is None or hold.state(now) is not LinkState.OPEN:
                return None
            raw = self._decrypt(conn, hold.tenant_id, hold.message_id)
            parts = parse_letter(raw).attachments if raw else []
            if not 0 <= index < len(parts):
                return None
            record_audit(
                conn,
                AuditAction.PORTAL_ATTACHMENT_DOWNLOADED,
                session.actor,
                hold.tenant_id,
                hold.message_id,
                hold=hold.id,
                index=index,
                size=len(parts[index].data),
            )
            self._emit(conn, hold, ev.EventType.PORTAL_ATTACHMENT_DOWNLOADED, {"index": index}, now)
        return parts[index]

    def reply(self, session: Session, hold_id: str, text: str, files: list[Part]) -> str | None:
        """Send the recipient's reply to the original sender through the normal pipeline.

        The envelope and From use the original message's tenant-owned sender address, so
        SPF/DKIM/DMARC align and the reply is delivered like any PHI message (verified TLS
        or message-level encryption, never plaintext); Reply-To carries the patient's
        address so the clinician's answer reaches them.  Returns the reply's message id.
        """
        now = self.access.now()
        with db.reader(self.engine) as conn:
            hold = self._open_hold(conn, session, hold_id)
            if hold is None or hold.state(now) is not LinkState.OPEN:
                return None
            raw = self._decrypt(conn, hold.tenant_id, hold.message_id)
            meta = conn.execute(
                sa.select(messages.c.mail_from, messages.c.header_from, tenants.c.name, tenants.c.settings)
                .join(tenants, tenants.c.id == messages.c.tenant_id)
                .where(messages.c.id == hold.message_id, messages.c.tenant_id == hold.tenant_id)
            ).one()
        if raw is None:
            return None
        sub = self._reply_submission(hold, meta, raw, text, files)
        if sub is None:
            return None
        who = Principal(hold.tenant_id, f"portal:{hold.recipient_id}", frozenset())
        result, _ = self.messages.submit(who, sub, system=True)
        self._record_reply(session, hold, result.id, len(files), now)
        return result.id

    def _reply_submission(
        self, hold: Hold, meta: Any, raw: bytes, text: str, files: list[Part]
    ) -> Submission | None:
        """The reply as a PHI submission from the original sender's address, or None when
        the original's addresses no longer parse."""
        original = parse_letter(raw)
        try:
            envelope = parse_address(str(meta.mail_from), "from")
            to = parse_address(reply_destination(original.reply_to, meta.header_from, meta.settings), "to")
            patient = parse_address(hold.address, "reply_to")
        except InvalidAddress:
            return None
        # The original's decoded subject may hold anything an encoded-word can carry.
        told = mime.one_line(original.subject)
        subject = told if told.lower().startswith("re:") else f"Re: {told}"
        headers: tuple[tuple[str, str], ...] = ()
        if original.message_id_header:
            headers = (
                ("In-Reply-To", original.message_id_header),
                ("References", original.message_id_header),
            )
        built = mime.build(
            mime.Draft(
                sender=dataclasses.replace(envelope, display_name=f"{hold.address} via secure portal"),
                to=(to,),
                reply_to=(patient,),
                subject=subject,
                text=text,
                attachments=tuple(mime.Attachment(f.filename, f.content_type, f.data) for f in files),
                headers=headers,
            ),
            self.access.message_id_domain,
        )
        return Submission(
            stream=Stream.PHI,
            source="portal",
            mail_from=envelope.smtp_addr_spec,
            header_from=envelope.smtp_addr_spec,
            recipients=(EnvelopeRecipient(to.smtp_addr_spec, to.ascii_domain, "to"),),
            raw=built.raw,
            message_id_header=built.message_id,
            tags=("portal-reply",),
        )

    def _record_reply(
        self, session: Session, hold: Hold, reply_id: str, attachments: int, now: datetime
    ) -> None:
        """The reply's link to the hold, its audit entry and its ``portal.replied`` event."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(portal_replies).values(
                    id=new_id("prp"),
                    tenant_id=hold.tenant_id,
                    portal_message_id=hold.id,
                    reply_message_id=reply_id,
                    created_at=now,
                )
            )
            record_audit(
                conn,
                AuditAction.PORTAL_REPLIED,
                session.actor,
                hold.tenant_id,
                hold.message_id,
                hold=hold.id,
                reply=reply_id,
                attachments=attachments,
            )
            self._emit(conn, hold, ev.EventType.PORTAL_REPLIED, {"reply_message_id": reply_id}, now)

    @staticmethod
    def _emit(conn: Connection, hold: Hold, type_: ev.EventType, data: dict[str, Any], now: datetime) -> None:
        emit(conn, hold, type_, data, now)


def emit(conn: Connection, hold: Hold, type_: ev.EventType, data: dict[str, Any], now: datetime) -> None:
    """A per-recipient portal event on the original message."""
    ev.emit(
        conn,
        tenant_id=hold.tenant_id,
        message_id=hold.message_id,
        type_=type_,
        recipient_id=hold.recipient_id,
        recipient=hold.address,
        data={"portal_message_id": hold.id, **data},
        at=now,
    )


def reply_destination(reply_to: str, header_from: str, settings: dict[str, Any] | None) -> str:
    """Where a recipient's secure reply goes: the message's own Reply-To; else the sender's
    reply mailbox (``reply_mailboxes``, by From address); else the tenant's
    (``reply_mailbox``); else the From address itself."""
    if reply_to:
        return reply_to
    settings = settings or {}
    per_sender = settings.get("reply_mailboxes")
    if isinstance(per_sender, dict) and isinstance(per_sender.get(header_from.lower()), str):
        return str(per_sender[header_from.lower()])
    tenant_box = settings.get("reply_mailbox")
    return tenant_box if isinstance(tenant_box, str) and tenant_box else header_from
