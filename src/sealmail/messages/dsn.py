"""Sending RFC 3464 bounces to the envelope sender (optional: ``SEALMAIL_DSN_ENABLED``).

A DSN is queued as a new message of the same tenant, from a null reverse-path
(``MAIL FROM:<>``, RFC 5321 §4.5.5) so a bounce about a bounce is never generated.  It
quotes only the safe headers (``domain/dsn.py``), never the subject or body: the
envelope sender may be forged and the body is PHI.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import structlog

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.dsn import build_dsn
from sealmail.domain.statuses import RecipientStatus
from sealmail.domain.tls_policy import Stream, TlsRequirement
from sealmail.messages.queue import RecordedOutcome
from sealmail.messages.service import EnvelopeRecipient, Messages, Submission
from sealmail.tenancy.service import Principal

log = structlog.get_logger("sealmail.dsn")


class DsnSender:
    def __init__(self, messages: Messages, reporting_mta: str) -> None:
        self.messages = messages
        self.reporting_mta = reporting_mta

    def send(
        self,
        outcome: RecordedOutcome,
        original_headers: bytes,
        mail_from: str | None = None,
        accepted_at: datetime | None = None,
        *,
        requiretls: bool = False,
    ) -> str | None:
        """Queue a DSN for one bounced or expired recipient; returns the DSN message id.

        ``requiretls``: the original carried REQUIRETLS, so its bounce does too (RFC 8689
        §4.3), headers only as with RET=HDRS (which every DSN here is).
        """
        sender = mail_from if mail_from is not None else self._envelope_sender(outcome)
        if not sender:
            return None  # null reverse-path: never bounce a bounce
        try:
            to = parse_address(sender, "mail_from")
        except InvalidAddress:
            return None
        a = outcome.attempt
        status = a.enhanced_code or ("4.4.7" if outcome.status == RecipientStatus.EXPIRED else "5.0.0")
        if outcome.status == RecipientStatus.BOUNCED and status.startswith("4"):
            status = "5" + status[1:]
        now = datetime.now(UTC)
        message_id = email.utils.make_msgid(domain=self.reporting_mta)
        raw = build_dsn(
            reporting_mta=self.reporting_mta,
            original_headers=original_headers,
            recipient=outcome.claimed.address,
            status=status,
            diagnostic=(f"{a.smtp_code} {a.reply}" if a.smtp_code and a.reply else a.detail) or None,
            remote_mta=a.mx_host,
            arrival_date=accepted_at or outcome.started_at,
            dsn_from=f"MAILER-DAEMON@{self.reporting_mta}",
            to=to.addr_spec,
            date=now,
            message_id=message_id,
            expired=outcome.status == RecipientStatus.EXPIRED,
            last_attempt_date=outcome.finished_at,
        )
        sub = Submission(
            stream=Stream.TRANSACTIONAL,
            source="dsn",
            mail_from="",
            header_from=f"MAILER-DAEMON@{self.reporting_mta}",
            recipients=(EnvelopeRecipient(to.smtp_addr_spec, to.ascii_domain, "env"),),
            raw=raw,
            message_id_header=message_id,
            tags=("dsn",),
            metadata={"dsn_for": outcome.claimed.message_id},
            tls_required=TlsRequirement.REQUIRETLS if requiretls else None,
        )
        who = Principal(outcome.claimed.tenant_id, "system:dsn", frozenset({"send"}))
        result, _ = self.messages.submit(who, sub, system=True)
        log.info("dsn.queued", message_id=outcome.claimed.message_id, dsn_id=result.id)
        return result.id

    def _envelope_sender(self, outcome: RecordedOutcome) -> str:
        return self.messages.envelope_sender(outcome.claimed.tenant_id, outcome.claimed.message_id)
