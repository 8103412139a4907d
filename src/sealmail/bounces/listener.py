"""The inbound listener: bounces (RFC 3464) and complaints (RFC 5965) arrive here.

Port 25 behind the MX of the return-path domains (``smtp_inbound_port``): remote MTAs
and feedback loops deliver reports without AUTH.  It accepts exactly two kinds of
recipient — a signed return path whose tag verifies (``return_path.py``) and the
feedback-loop address — answers a bad tag with 550 5.1.1 and anything else with 550
5.7.1 (no relay), and hands the data to ``inbound.py``.  STARTTLS is required here too: a
DSN may carry the original message back, and that is ePHI.
"""

from __future__ import annotations

import collections
import enum
import functools
import ssl
from typing import AnyStr, Final

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from sealmail.bounces.inbound import ReportIntake, ReportOutcome
from sealmail.bounces.return_path import ReportAddress
from sealmail.domain import smtp_replies as replies
from sealmail.domain.reports import MAX_PARSE_BYTES
from sealmail.domain.smtp_replies import Reply
from sealmail.smtpd.server import (
    NULL_SENDER,
    ListenerHandler,
    ListenerOptions,
    ListenerSMTP,
    SmtpListener,
    TransactionEnvelope,
)

log = structlog.get_logger("sealmail.smtp")

# RFC 3463 X.1.1 "bad destination mailbox address": a return path whose tag does not
# verify was never ours to hand out.
S550_BAD_RETURN_PATH: Final = Reply(550, "5.1.1", "Bad destination mailbox address")
S250_REPORT_RECEIVED: Final = Reply(250, "2.0.0", "Report received")
# An inbound report concerns one recipient; a handful covers MTAs that batch.
MAX_REPORT_RECIPIENTS: Final = 10


class ReportEvent(enum.StrEnum):
    REPORT_RECEIVED = "smtp.report_received"
    REPORT_FAILED = "smtp.report_failed"


class ReportEnvelope(TransactionEnvelope):
    """The envelope plus what each recipient of the report is."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[ReportAddress] = []


class ReportHandler(ListenerHandler):
    """aiosmtpd hooks of the inbound listener: report addresses only, then ``ReportIntake``."""

    def __init__(self, intake: ReportIntake) -> None:
        super().__init__()
        self.intake = intake
        self.reports: collections.Counter[str] = collections.Counter()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: ReportEnvelope, address: str, mail_options: list[str]
    ) -> str:
        if address == NULL_SENDER:
            # RFC 3464 §2: DSNs come from the null reverse-path.
            envelope.sender_address = ""
        else:
            # Feedback loops send from real addresses; who sent a report does not matter,
            # only which recipient it names, so the sender is checked for syntax only.
            parsed = self.sender_syntax(envelope, address, None)
            if isinstance(parsed, str):
                return parsed
            envelope.sender_address = parsed.addr_spec
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(replies.S250_SENDER_OK)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: ReportEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.reports) >= MAX_REPORT_RECIPIENTS:
            return self.reject(replies.S452_TOO_MANY_RECIPIENTS, "too_many_recipients")
        parsed = self.recipient_syntax(address, None)
        if isinstance(parsed, str):
            return parsed
        # The first call loads the VERP key from the database: off the event loop.
        found = await self.run(self.intake.recognise, parsed)
        if found.kind == "forged":
            return self.reject(S550_BAD_RETURN_PATH, "bad_return_path")
        if found.kind not in ("verp", "fbl"):
            # Anything but a report address, alone or next to one: this door relays nothing.
            return self.reject(replies.S550_RELAY_DENIED, "relay_denied")
        envelope.reports.append(found)
        envelope.recipients.append(parsed)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(replies.S250_RECIPIENT_OK)

    async def handle_DATA(self, server: ListenerSMTP, session: Session, envelope: ReportEnvelope) -> str:
        raw = envelope.original_content or b""
        server.begin_commit()
        try:
            process = functools.partial(
                self.intake.process, raw, tuple(envelope.reports), null_sender=envelope.sender_address == ""
            )
            outcomes = await self.run(process)
        except Exception as exc:  # noqa: BLE001 — any failure is a temporary 451; the MTA retries
            # process() is one transaction: nothing is half-applied.  Class only in the log.
            self.count("internal_error")
            log.error(ReportEvent.REPORT_FAILED, error=type(exc).__name__)
            return str(replies.S451_LOCAL_ERROR)
        for outcome in outcomes:
            self.reports[str(outcome)] += 1
        # Unmatched and unrecognised reports are accepted too: refusing them would only
        # make the remote MTA bounce its bounce.  Outcome tokens only, never addresses.
        log.info(
            ReportEvent.REPORT_RECEIVED,
            outcomes=[str(o) for o in outcomes],
            size=len(raw),
            matched=any(o not in (ReportOutcome.UNMATCHED, ReportOutcome.UNRECOGNIZED) for o in outcomes),
        )
        # RFC 5321 §4.2.5: 250 only once what the report changed is committed.
        return str(S250_REPORT_RECEIVED)


class _ReportSMTP(ListenerSMTP):
    """No AUTH here (RFC 5321 relay, not RFC 6409 submission); TLS before any transaction."""

    # A report is parsed up to MAX_PARSE_BYTES; holding the rest (up to the SIZE limit, for a
    # DSN returning a large original) let any client that knows the feedback-loop address
    # make the listener hold that much per connection.  The rest is read and dropped.
    data_keep_limit = MAX_PARSE_BYTES

    def _create_envelope(self) -> Envelope:
        return ReportEnvelope()

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status.startswith("250-AUTH"):
            # aiosmtpd has no switch for not advertising AUTH; there is nothing to log in to.
            return
        await super().push(status)

    async def check_auth_needed(self, caller_method: str) -> bool:
        if not self.tls_active:
            # RFC 3207 §4: a server may require STARTTLS before mail transactions.
            await self.push(str(replies.S530_MUST_STARTTLS))
            return True
        # handle_RCPT admits report addresses only.
        return False

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push(str(replies.S502_NOT_IMPLEMENTED))


class ReportListener(SmtpListener):
    """The inbound listener; ``start`` and ``stop`` run it in its own thread."""

    name = "inbound"
    protocol = _ReportSMTP

    def __init__(self, options: ListenerOptions, intake: ReportIntake, tls: ssl.SSLContext) -> None:
        super().__init__(ReportHandler(intake), options, tls)

    @property
    def reports(self) -> collections.Counter[str]:
        """Reports so far by outcome (bounced, complained, unmatched, …)."""
        assert isinstance(self.handler, ReportHandler)
        return self.handler.reports
