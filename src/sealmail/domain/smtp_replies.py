"""The SMTP replies Sealmail sends, as named constants.

Adapters (the SMTP gateway, synthetic replies recorded on an ``Attempt``) use these
instead of writing reply strings by hand, so the code, the RFC 3463 enhanced status code
and the wording stay consistent, and one test checks that every enhanced code's class
agrees with its reply code (aiosmtpd ``testing/statuscodes.py``).

RFC 2034 §3 puts the enhanced code first in the text of every 2xx, 4xx and 5xx reply
once ENHANCEDSTATUSCODES is advertised.  Intermediate 3xx replies (354, 334) have no
enhanced code (RFC 3463 §3.1 defines classes 2, 4 and 5 only), so theirs is empty.  The
220 greeting and the EHLO reply carry the host name and are built by the server itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: ``str(reply)`` is the line to send, without CRLF."""

    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        if not self.enhanced:
            return f"{self.code} {self.text}"
        return f"{self.code} {self.enhanced} {self.text}"

    @property
    def is_transient(self) -> bool:
        """A 4yz reply: the client may try again later (RFC 5321 §4.2.1)."""
        return 400 <= self.code <= 499

    @property
    def is_permanent(self) -> bool:
        """A 5yz reply: the client must not repeat the request (RFC 5321 §4.2.1)."""
        return 500 <= self.code <= 599

    def with_text(self, text: str) -> Reply:
        """The same code with more specific wording, e.g. a queue id after "Queued".

        The text must be one line: a CR or LF would let it inject further reply lines.
        """
        if any(ch in text for ch in "\r\n\0"):
            raise ValueError("SMTP reply text must not contain CR, LF or NUL")
        return dataclasses.replace(self, text=text)


# --- 2yz: positive completion -------------------------------------------------------

S221_BYE = Reply(221, "2.0.0", "Bye")
# RFC 4954 §6.
S235_AUTH_SUCCEEDED = Reply(235, "2.7.0", "Authentication successful")
S250_OK = Reply(250, "2.0.0", "OK")
# RFC 3463: X.1.0 "other address status" is the usual code for an accepted MAIL FROM.
S250_SENDER_OK = Reply(250, "2.1.0", "Sender OK")
# RFC 3463: X.1.5 "destination address valid".
S250_RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
S250_QUEUED = Reply(250, "2.0.0", "Message accepted for delivery")
S250_RESET = Reply(250, "2.0.0", "Reset state")
# RFC 3207 §4: the reply to STARTTLS before the handshake starts.
S220_READY_TO_START_TLS = Reply(220, "2.0.0", "Ready to start TLS")
# RFC 5321 §3.5.3: a server that will not verify says so with 252, not 250/550.
S252_CANNOT_VRFY = Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")

# --- 3yz: positive intermediate (no enhanced code) ----------------------------------

S354_START_MAIL_INPUT = Reply(354, "", "End data with <CR><LF>.<CR><LF>")

# --- 4yz: transient negative completion ---------------------------------------------

# RFC 3463: X.3.2 "system not accepting network messages".
S421_SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down and closing transmission channel")
# RFC 5321 §4.5.3.2 timeouts; RFC 3463 X.4.2 "bad connection".
S421_TIMEOUT = Reply(421, "4.4.2", "Timeout, closing transmission channel")
# RFC 3463: X.4.5 "mail system congestion".
S421_TOO_MANY_CONNECTIONS = Reply(421, "4.4.5", "Too many connections, try again later")
# RFC 3463: X.7.0 "other security or policy status" (as Postfix answers this).
S421_TOO_MANY_FROM_CLIENT = Reply(421, "4.7.0", "Too many connections from your address, try again later")
S451_LOCAL_ERROR = Reply(451, "4.3.0", "Requested action aborted: local error in processing")
S451_RATE_LIMITED = Reply(451, "4.7.0", "Rate limit exceeded, try again later")
# RFC 5321 §4.5.3.1.10: a recipient limit is answered with 452 (and X.5.3), which the
# client treats as "send the rest in another transaction", not as a refusal.
S452_TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
S452_INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage")
# RFC 3207 §4.
S454_TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available due to temporary reason")
# RFC 4954 §6.
S454_AUTH_TEMPORARY_FAILURE = Reply(454, "4.7.0", "Temporary authentication failure")

# --- 5yz: permanent negative completion ---------------------------------------------

S500_UNRECOGNIZED_COMMAND = Reply(500, "5.5.2", "Syntax error, command unrecognized")
# RFC 5321 §4.5.3.1.4: 512 octets per command line; §4.5.3.1.6: 1000 per text line.
S500_LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
# RFC 3463: X.5.4 "invalid command arguments".
S501_SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
S502_NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
S503_BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
# RFC 3207 §4.2: STARTTLS on a session already under TLS.
S503_TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "Bad sequence of commands: TLS already active")
# RFC 4954 §4: an unknown SASL mechanism.
S504_AUTH_MECHANISM_UNSUPPORTED = Reply(504, "5.5.4", "Unrecognized authentication type")
# RFC 3207 §4: a server that requires TLS answers other commands with this until
# STARTTLS; we never advertise AUTH or accept mail in plaintext on submission.
S530_MUST_STARTTLS = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
# RFC 4954 §6.
S530_AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
S534_AUTH_MECHANISM_TOO_WEAK = Reply(534, "5.7.9", "Authentication mechanism is too weak")
S535_AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
S538_ENCRYPTION_REQUIRED_FOR_AUTH = Reply(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
S550_RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")
# The authenticated account may not send as this MAIL FROM / From address.
S550_SENDER_NOT_AUTHORIZED = Reply(550, "5.7.1", "Sender address not authorized")
# RFC 4954 §6: 535 5.7.8 "authentication credentials invalid", here for a credential revoked
# after this connection authenticated with it.
S535_CREDENTIAL_REVOKED = Reply(535, "5.7.8", "Authentication credentials invalid (revoked)")
# RFC 3463: X.3.4 "message too big for system"; RFC 1870 §6.2 answers SIZE with 552.
S552_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
# RFC 3463: X.1.3 "bad destination mailbox address syntax".
S553_BAD_ADDRESS = Reply(553, "5.1.3", "Bad destination mailbox address syntax")
# RFC 3463: X.1.7 "bad sender's mailbox address syntax".
S553_BAD_SENDER_ADDRESS = Reply(553, "5.1.7", "Bad sender mailbox address syntax")
# RFC 6531 §3.7.4.1 and X.6.7: a non-ASCII address without the SMTPUTF8 parameter.
S553_NON_ASCII_ADDRESS = Reply(553, "5.6.7", "Non-ASCII addresses not permitted without SMTPUTF8")
# RFC 5248: X.7.10 "encryption needed".  Sent when the TLS policy a message demands
# (stream minimum, MTA-STS or DANE) cannot be met; mail is never sent in plaintext.
S554_TLS_REQUIRED = Reply(554, "5.7.10", "Encryption needed: TLS is required")
S554_TRANSACTION_FAILED = Reply(554, "5.0.0", "Transaction failed")
# A DLP or content rule refused the message; the text names no rule and no content.
S554_POLICY_REJECTED = Reply(554, "5.7.1", "Message rejected by policy")
# A submitted message breaks an intake limit (``intake_limits.Rule``); the text names the
# rule.  RFC 3463 X.6.0 "other or undefined media error": the content is unusable as sent.
S554_MESSAGE_REFUSED = Reply(554, "5.6.0", "Message refused")
# RFC 3463 X.3.4 "message too big for system", for a header section or field over its limit.
S552_HEADER_TOO_BIG = Reply(552, "5.3.4", "Message header exceeds fixed maximum size")
# RFC 5321 §6.3 and RFC 3463 X.4.6 "routing loop detected": too many Received fields.
S554_ROUTING_LOOP = Reply(554, "5.4.6", "Routing loop detected")
# RFC 5321 §4.1.1.11: unknown MAIL FROM / RCPT TO parameters.
S555_PARAMETERS_NOT_RECOGNIZED = Reply(
    555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented"
)


def catalogue() -> dict[str, Reply]:
    """Every named reply in this module, by constant name (for tests and docs)."""
    return {
        name: value
        for name, value in globals().items()
        if name[:1] == "S" and name[1:4].isdigit() and isinstance(value, Reply)
    }
