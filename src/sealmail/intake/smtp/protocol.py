"""One submission connection: TLS first, then AUTH (RFC 4954) or a recognised connector.

Everyone else gets 530 at MAIL and RCPT: there is no open relay.  Every mail transaction
needs TLS first (RFC 3207 §4 lets a server insist), connectors included, because what
flows through here is ePHI (HIPAA §164.312(e)(1) transmission security).

aiosmtpd's built-in AUTH mechanisms call a synchronous authenticator; argon2 takes tens
of milliseconds, so these overrides parse the same way and verify in a thread.  RFC 4954
§4: aiosmtpd neither advertises nor accepts AUTH before STARTTLS (``auth_require_tls``),
so passwords never cross the wire in the clear.
"""

from __future__ import annotations

import asyncio
import binascii
from base64 import b64decode
from typing import Any, Final

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Session

from sealmail.domain import smtp_replies as replies
from sealmail.domain.smtp_replies import Reply
from sealmail.intake.smtp.handler import SubmissionHandler
from sealmail.intake.smtp.options import GatewayEvent, Sender, SubmissionSession
from sealmail.smtpd.server import ListenerSMTP, RequireTlsSMTP, peer_ip

log = structlog.get_logger("sealmail.smtp")

# Failed AUTH attempts one connection may make; the next failure is answered 421 and the
# connection closed, so password guessing costs a new TCP and TLS handshake each time.
MAX_AUTH_FAILURES: Final = 3

# RFC 5321 §3.8: 421 may answer any command when the server is closing the channel;
# RFC 3463 X.7.0 "other or undefined security status".
S421_TOO_MANY_AUTH_FAILURES: Final = Reply(
    421, "4.7.0", "Too many failed authentication attempts, closing connection"
)
# RFC 4954 §4: a client response that is not valid base64 (or, RFC 4616, not a valid
# PLAIN message) is answered 501 5.5.2.
S501_BAD_AUTH_RESPONSE: Final = Reply(501, "5.5.2", "Cannot decode the authentication response")


class SubmissionSMTP(RequireTlsSMTP, ListenerSMTP):
    """One connection's protocol state, with our AUTH and access rules."""

    # Clients may send MAIL, RCPT and DATA in one packet; the replies go out in one write.
    pipelining = True

    def __init__(self, handler: SubmissionHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.submission = handler
        # Counted per connection, not per session: STARTTLS replaces the session.
        self.auth_failures = 0

    def _create_session(self) -> Session:
        return SubmissionSession(self.loop)

    async def check_auth_needed(self, caller_method: str) -> bool:
        """Refuse MAIL, RCPT, DATA (and VRFY, HELP) unless TLS is up and we know the sender.

        aiosmtpd calls this before those commands; returning True means a reply was sent.
        """
        session = self.session
        assert isinstance(session, SubmissionSession)
        if not self.tls_active:
            # RFC 3207 §4: a server may require STARTTLS before mail transactions.
            await self.push(str(replies.S530_MUST_STARTTLS))
            return True
        if session.sender is not None:
            return False
        connector = self.submission.connector_sender(session)
        if connector is not None:
            session.sender = connector
            log.info(
                GatewayEvent.CONNECTOR_ADMITTED,
                tenant_id=connector.principal.tenant_id,
                credential_id=connector.principal.credential_id,
            )
            return False
        # RFC 4954 §6: 530 5.7.0 when a command needs authentication first.  This is
        # the no-open-relay rule: nobody unknown may start a transaction.
        self.submission.count("auth_required")
        await self.push(str(replies.S530_AUTH_REQUIRED))
        return True

    async def smtp_AUTH(self, arg: str) -> None:
        await super().smtp_AUTH(arg)
        if self.auth_failures >= MAX_AUTH_FAILURES and self.transport is not None:
            self.transport.close()

    async def auth_PLAIN(self, _: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if not isinstance(blob, bytes):
                return self._failed(None)  # challenge_auth has replied
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                return self._failed(S501_BAD_AUTH_RESPONSE)
        # RFC 4616 §2: [authzid] NUL authcid NUL passwd.  Acting as another identity
        # (an authzid other than the authcid) is not supported, so it is refused.
        parts = blob.split(b"\x00")
        if len(parts) != 3 or parts[0] not in (b"", parts[1]):
            return self._failed(S501_BAD_AUTH_RESPONSE)
        return await self._verify(parts[1], parts[2])

    async def auth_LOGIN(self, _: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if not isinstance(login, bytes):
                return self._failed(None)
        else:
            try:
                login = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                return self._failed(S501_BAD_AUTH_RESPONSE)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return self._failed(None)
        return await self._verify(login, password)

    def _failed(self, reply: Reply | None) -> AuthResult:
        """Count a failed AUTH; the last allowed one is answered 421 and closes the line.

        ``reply`` None means aiosmtpd has already answered (client sent "*" or bad
        base64 to a challenge).
        """
        self.auth_failures += 1
        self.submission.count("auth_failed")
        if self.auth_failures >= MAX_AUTH_FAILURES:
            log.warning(
                GatewayEvent.AUTH_LOCKED_OUT,
                failures=self.auth_failures,
                peer=str(peer_ip(self.session.peer if self.session else None)),
            )
            if reply is not None:
                reply = S421_TOO_MANY_AUTH_FAILURES
        else:
            log.info(GatewayEvent.AUTH_FAILED, failures=self.auth_failures)
        if reply is None:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=str(reply))

    async def _verify(self, login: bytes, password: bytes) -> AuthResult:
        try:
            username, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            username, secret = "", ""
        services = self.submission.services
        throttle = services.auth_throttle
        peer = str(peer_ip(self.session.peer if self.session else None))
        # Counted across connections, per address and per username: a guesser who reconnects
        # after each lockout still runs out, and is refused before argon2 runs.
        keys = [f"smtpauth:ip:{peer}", f"smtpauth:user:{username[:128]}"]
        if await asyncio.to_thread(throttle.refused, keys) is not None:
            # RFC 4954 §6: 454 4.7.0 is a temporary failure; the client may try later.
            return self._failed(replies.S454_AUTH_TEMPORARY_FAILURE)
        found = None
        if username and secret:
            found = await asyncio.to_thread(services.tenancy.authenticate_smtp, username, secret)
        if found is None:
            await asyncio.to_thread(throttle.failed, keys)
            # authenticate_smtp has written the audit entry.
            return self._failed(replies.S535_AUTH_FAILED)
        principal, stream = found
        session = self.session
        assert isinstance(session, SubmissionSession)
        session.sender = Sender(principal, stream, "auth")
        log.info(
            GatewayEvent.AUTH_SUCCEEDED, tenant_id=principal.tenant_id, credential_id=principal.credential_id
        )
        return AuthResult(success=True, message=str(replies.S235_AUTH_SUCCEEDED))
