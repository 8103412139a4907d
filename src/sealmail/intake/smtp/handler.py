"""The submission handler: MAIL, RCPT and DATA checks and the hand-off to ``Messages``.

A message submitted here is turned into the same ``Submission`` the raw API endpoint
builds (``compose.submission_from_raw``) and stored by the same ``Messages.submit``, so
rows, events and audit entries are identical whichever door it came through.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Final

import structlog
from aiosmtpd.smtp import SMTP

from sealmail.domain import smtp_replies as replies
from sealmail.domain.addresses import Address
from sealmail.domain.intake_limits import Rule
from sealmail.domain.smtp_replies import Reply
from sealmail.domain.tls_policy import Stream
from sealmail.errors import MessageRefused, PolicyRejected, ValidationFailed
from sealmail.intake.smtp.options import (
    GatewayEvent,
    GatewayOptions,
    GatewayServices,
    Sender,
    SubmissionSession,
)
from sealmail.messages.compose import submission_from_raw
from sealmail.messages.submission import Submission
from sealmail.secureline.harvest import harvest
from sealmail.smtpd.server import (
    NULL_SENDER,
    ListenerHandler,
    ListenerSMTP,
    TransactionEnvelope,
    offer_requiretls,
    one_line,
    peer_ip,
)
from sealmail.tenancy.service import Principal

log = structlog.get_logger("sealmail.smtp")

# RFC 3463 X.6.0 "other or undefined media error": the message itself is unusable.
S554_CONTENT_REJECTED: Final = Reply(554, "5.6.0", "Message content rejected")

# Each intake rule's permanent reply; the rest get S554_MESSAGE_REFUSED.
_REFUSAL_REPLIES: Final[dict[str, Reply]] = {
    Rule.HEADER_TOO_LARGE: replies.S552_HEADER_TOO_BIG,
    Rule.HEADER_FIELD_TOO_LONG: replies.S552_HEADER_TOO_BIG,
    Rule.ROUTING_LOOP: replies.S554_ROUTING_LOOP,
}

# The 250 once a message is committed, but for its id (one we minted: one line, no CR or LF).
_QUEUED_AS: Final = str(replies.S250_QUEUED.with_text("Ok: queued as "))

# ValidationFailed fields that mean "this sender may not send as that address".
_SENDER_FIELDS: Final = frozenset({"from", "mail_from"})


def _tenant(session: SubmissionSession | None) -> str | None:
    sender = session.sender if session else None
    return sender.principal.tenant_id if sender else None


class SubmissionHandler(ListenerHandler):
    """aiosmtpd hooks of the submission listener."""

    def __init__(self, options: GatewayOptions, services: GatewayServices) -> None:
        super().__init__()
        self.options = options
        self.services = services

    def connector_sender(self, session: SubmissionSession) -> Sender | None:
        """The connector identity of this connection, or None."""
        tenant = self.options.connector_tenant
        if not tenant:
            return None
        ip = peer_ip(session.peer)
        by_network = ip is not None and any(
            ip.version == net.version and ip in net for net in self.options.connector_networks
        )
        # ``peercert`` is only non-empty for a certificate the handshake verified against
        # smtp_connector_client_ca (see server_tls_context).
        by_certificate = self.options.connector_ca and bool((session.ssl or {}).get("peercert"))
        if not (by_network or by_certificate):
            return None
        principal = Principal(tenant, f"connector:{ip}", frozenset({"send"}))
        return Sender(principal, Stream.TRANSACTIONAL, "connector")

    async def handle_EHLO(
        self,
        server: ListenerSMTP,
        session: SubmissionSession,
        envelope: TransactionEnvelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        return offer_requiretls(session, hostname, responses)

    async def credential_live(self, credential_id: str) -> bool:
        """An SMTP credential revoked after this connection authenticated ends its sending
        within ``CACHE_SECONDS`` (a fresh cache answers on the loop, else a thread reads)."""
        tenancy = self.services.tenancy
        live = tenancy.cached_smtp_credential_live(credential_id)
        if live is None:
            live = await self.run(tenancy.smtp_credential_live, credential_id)
        return live

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SubmissionSession,
        envelope: TransactionEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        sender = session.sender
        assert sender is not None  # check_auth_needed ran first
        tenant_id = sender.principal.tenant_id
        if sender.via == "auth" and not await self.credential_live(sender.principal.credential_id):
            return self.reject(replies.S535_CREDENTIAL_REVOKED, "credential_revoked", tenant_id)
        if address == NULL_SENDER:
            # RFC 5321 §4.5.5: the null reverse-path; the header From is still checked.
            envelope.sender_address = ""
        else:
            parsed = self.sender_syntax(envelope, address, tenant_id)
            if isinstance(parsed, str):
                return parsed
            # Refuse an unverified sender domain now rather than after the client has
            # uploaded the whole message; accept() checks it again in its transaction.
            domain = parsed.ascii_domain.lower()
            tenancy = self.services.tenancy
            # A hit in the verified set's cache needs no thread hop; a miss asks the database.
            verified = tenancy.cached_verified_sender_domain(tenant_id, domain) or await self.run(
                tenancy.is_verified_sender_domain, tenant_id, domain
            )
            if not verified:
                return self.reject(
                    replies.S550_SENDER_NOT_AUTHORIZED.with_text(
                        f"Sender address not authorized: {domain} is not "
                        "a verified sender domain of this tenant"
                    ),
                    "sender_not_authorized",
                    tenant_id,
                )
            envelope.sender_address = parsed.addr_spec
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        # RFC 8689 §4.1: the message is tagged; delivery then honours it (delivery/smtp_client.py).
        envelope.requiretls = "REQUIRETLS" in mail_options
        return str(replies.S250_SENDER_OK)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SubmissionSession,
        envelope: TransactionEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        tenant_id = _tenant(session)
        if len(envelope.recipients) >= self.options.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in another
            # transaction; the recipients accepted so far stay accepted.
            return self.reject(replies.S452_TOO_MANY_RECIPIENTS, "too_many_recipients", tenant_id)
        parsed = self.recipient_syntax(address, tenant_id)
        if isinstance(parsed, str):
            return parsed
        if parsed.needs_smtputf8 and not envelope.smtp_utf8:
            return self.reject(replies.S553_NON_ASCII_ADDRESS, "utf8_without_smtputf8", tenant_id)
        envelope.recipients.append(parsed)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(replies.S250_RECIPIENT_OK)

    async def handle_DATA(
        self, server: ListenerSMTP, session: SubmissionSession, envelope: TransactionEnvelope
    ) -> str:
        sender = session.sender
        assert sender is not None  # check_auth_needed ran before DATA
        raw = envelope.original_content or b""
        # From here until the reply is written, stop() waits: a client must not lose
        # its 250 for a message that was stored.
        server.begin_commit()
        build = partial(
            self._submission,
            sender,
            raw,
            envelope.sender_address,
            tuple(envelope.recipients),
            envelope.requiretls,
        )
        # Built, screened, sealed and committed in the lane's thread (messages/lane.py says
        # why not the executor); ``stop`` waits for it, and a client that goes away meanwhile
        # does not cancel it: the message commits or rolls back as a whole.
        job = self.services.messages.enqueue(sender.principal, build)
        self.track(job.future)
        try:
            await asyncio.shield(job.future)
            assert job.item is not None  # set before the future completes
            message_id = str(job.item.message["id"])
            await self._harvest(sender.principal.tenant_id, raw)
        except (MessageRefused, ValidationFailed, PolicyRejected) as exc:
            return self._refusal(exc, sender.principal.tenant_id)
        except Exception as exc:  # noqa: BLE001 — any other failure is a temporary 451
            # submit() is one transaction, so nothing is half-stored and the client's
            # retry (RFC 5321 §4.2.5) is safe.  Only the class is logged: an exception
            # message might quote content.
            self.count("internal_error")
            log.error(
                GatewayEvent.ACCEPT_FAILED, error=type(exc).__name__, tenant_id=sender.principal.tenant_id
            )
            return str(replies.S451_LOCAL_ERROR)
        log.info(
            GatewayEvent.ACCEPTED,
            tenant_id=sender.principal.tenant_id,
            credential_id=sender.principal.credential_id,
            message_id=message_id,
            recipients=len(envelope.recipients),
            size=len(raw),
        )
        # RFC 5321 §4.2.5: 250 only once the message is safely stored (accept committed).
        return _QUEUED_AS + message_id

    def _refusal(self, exc: MessageRefused | ValidationFailed | PolicyRejected, tenant_id: str) -> str:
        """The permanent reply (RFC 5321 §4.2.1) to a message ``accept`` refused."""
        if isinstance(exc, MessageRefused):
            # The same bytes would break the same limit again.
            reply = _REFUSAL_REPLIES.get(exc.rule, replies.S554_MESSAGE_REFUSED)
            text = one_line(f"{reply.text} ({exc.rule}): {exc.detail}")
            return self.reject(reply.with_text(text), str(exc.rule), tenant_id)
        if isinstance(exc, PolicyRejected):
            # DLP block: a permanent refusal naming the detectors and places, never values.
            return self.reject(
                replies.S554_POLICY_REJECTED.with_text(one_line(exc.detail)), "dlp_blocked", tenant_id
            )
        errors = exc.extra.get("errors") or [{}]
        if str(errors[0].get("field", "")) in _SENDER_FIELDS:
            reply, reason = replies.S550_SENDER_NOT_AUTHORIZED, "sender_not_authorized"
        else:
            reply, reason = S554_CONTENT_REJECTED, "invalid_message"
        # The detail names a field and a rule, never content (errors.py contract).
        return self.reject(reply.with_text(one_line(exc.detail)), reason, tenant_id)

    def _submission(
        self, sender: Sender, raw: bytes, mail_from: str, rcpts: tuple[Address, ...], requiretls: bool
    ) -> Submission:
        return submission_from_raw(
            raw,
            mail_from,
            rcpts,
            source="smtp",
            message_id_domain=self.options.listen.hostname,
            limits=self.options.limits,
            requiretls=requiretls,
            stream=sender.stream,
        )

    async def _harvest(self, tenant_id: str, raw: bytes) -> None:
        """Tenant opt-in (``harvest_keys``): keep the sender's Autocrypt / S/MIME certificates.

        Runs after the message is committed and never affects the reply; in a thread only
        when the tenant opted in or its settings must be read.
        """
        settings = self.services.tenancy.cached_tenant_settings(tenant_id)
        if settings is None or settings.get("harvest_keys"):
            await self.run(self._harvest_now, tenant_id, raw)

    def _harvest_now(self, tenant_id: str, raw: bytes) -> None:
        try:
            if self.services.tenancy.tenant_settings(tenant_id).get("harvest_keys"):
                harvest(self.services.keydir, tenant_id, raw)
        except Exception as exc:  # noqa: BLE001 — harvesting is best-effort by design
            log.warning("smtp.harvest_failed", error=type(exc).__name__)
