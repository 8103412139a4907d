"""When to try a deferred recipient again, and what a refusal means.

Size: one file on purpose: it is one classification table (reply codes, enhanced codes and
texts to ``BounceClass``) with the schedule that reads it; split, the table would be read in
pieces.

Three pure pieces, all taking facts and returning values (style rule 3):

* ``classify`` turns an SMTP reply into a stable ``BounceClass`` token.  The pipeline
  is the one the anchors converge on (research/delivery.md §c.5): the reply code class,
  then the RFC 3463 enhanced status code ``class.subject.detail``, then regular
  expressions over the reply text for codes too coarse to say anything on their own.
* ``is_permanent`` says whether a reply ends delivery for the recipient.
* ``RetrySchedule`` turns a deferral into "retry at T", "bounce" or "expire": capped
  exponential backoff with jitter (Postfix's doubling from 300 s, capped near its
  4000 s), a queue lifetime of 72 h (Haraka, SendGrid), a per-message ``expires_at``,
  and the server's own "try again in N minutes" hint (Postal).

Destination-wide back-off (a 421 throttle, the circuit breaker) is a queue concern and
lives with the worker; this module only decides for one recipient.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sealmail.domain.outcomes import Attempt, AttemptStatus

__all__ = [
    "Bounce",
    "BounceClass",
    "Expire",
    "Retry",
    "RetryAction",
    "RetryDecision",
    "RetrySchedule",
    "classify",
    "is_permanent",
    "parse_enhanced_code",
    "parse_retry_hint",
]


class BounceClass(enum.StrEnum):
    """Why a recipient was refused; the values are public API (webhooks, metrics)."""

    INVALID_RECIPIENT = "invalid_recipient"
    INACTIVE_MAILBOX = "inactive_mailbox"
    BAD_DOMAIN = "bad_domain"
    DNS_FAILURE = "dns_failure"
    MAILBOX_FULL = "mailbox_full"
    SPAM_BLOCK = "spam_block"
    SPAM_CONTENT = "spam_content"
    POLICY = "policy"
    AUTHENTICATION_FAILED = "authentication_failed"
    TLS_REQUIRED = "tls_required"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    RATE_LIMITED = "rate_limited"
    NO_ANSWER = "no_answer"
    BAD_CONNECTION = "bad_connection"
    MESSAGE_EXPIRED = "message_expired"
    UNCLASSIFIED = "unclassified"


# ------------------------------------------------------------------------------------
# Enhanced status codes
# ------------------------------------------------------------------------------------

# RFC 3463 §2: status-code = class "." subject "." detail, where class is 2, 4 or 5 and
# subject and detail are 1 to 3 digits without leading zeros (we tolerate them).
_ENHANCED_RE: Final = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")

# A reply as it appears on the wire: "550-5.1.1 text" or "550 5.1.1 text".  RFC 2034 §3
# puts the enhanced code first in the text of each line.
_REPLY_PREFIX_RE: Final = re.compile(r"^\s*(\d{3})(?:[ -]+([245]\.\d{1,3}\.\d{1,3})\b)?")


def parse_enhanced_code(enhanced: str | None) -> tuple[int, int, int] | None:
    """Split ``"5.1.1"`` into ``(5, 1, 1)``; anything malformed gives ``None``."""
    if enhanced is None:
        return None
    match = _ENHANCED_RE.match(enhanced.strip())
    if match is None:
        return None
    klass, subject, detail = match.groups()
    return int(klass), int(subject), int(detail)


# Subject/detail pairs that name the cause precisely.  The key is (subject, detail);
# the class (4 or 5) only changes the meaning where a second table below says so.
# Sources: RFC 3463 §3, RFC 4954 §6, RFC 5248, RFC 7293, RFC 7372, RFC 7505, RFC 8617,
# RFC 8689 and the IANA "SMTP Enhanced Status Codes" registry.
_SPECIFIC: Final[dict[tuple[int, int], BounceClass]] = {
    # X.1 addressing status
    (1, 1): BounceClass.INVALID_RECIPIENT,  # bad destination mailbox address
    (1, 2): BounceClass.BAD_DOMAIN,  # bad destination system address
    (1, 3): BounceClass.INVALID_RECIPIENT,  # bad destination mailbox address syntax
    (1, 4): BounceClass.INVALID_RECIPIENT,  # destination mailbox address ambiguous
    (1, 6): BounceClass.INACTIVE_MAILBOX,  # mailbox has moved, no forwarding address
    (1, 7): BounceClass.POLICY,  # bad sender's mailbox address syntax
    (1, 8): BounceClass.POLICY,  # bad sender's system address
    (1, 10): BounceClass.BAD_DOMAIN,  # RFC 7505 §4.2: recipient domain has a null MX
    # X.2 mailbox status
    (2, 1): BounceClass.INACTIVE_MAILBOX,  # mailbox disabled, not accepting messages
    (2, 2): BounceClass.MAILBOX_FULL,  # mailbox full
    (2, 3): BounceClass.POLICY,  # message length exceeds administrative limit
    # X.3 mail system status
    (3, 1): BounceClass.MAILBOX_FULL,  # mail system full (a quota problem all the same)
    (3, 2): BounceClass.NO_ANSWER,  # system not accepting network messages
    (3, 4): BounceClass.POLICY,  # message too big for system
    # X.4 network and routing status
    (4, 2): BounceClass.BAD_CONNECTION,  # bad connection
    (4, 3): BounceClass.DNS_FAILURE,  # directory server failure
    (4, 4): BounceClass.DNS_FAILURE,  # unable to route (5.4.4 is refined below)
    (4, 5): BounceClass.RATE_LIMITED,  # mail system congestion
    (4, 6): BounceClass.BAD_CONNECTION,  # routing loop detected
    (4, 7): BounceClass.MESSAGE_EXPIRED,  # delivery time expired
    # X.5 mail delivery protocol status
    (5, 3): BounceClass.TOO_MANY_RECIPIENTS,  # too many recipients
    # X.7 security or policy status
    (7, 2): BounceClass.POLICY,  # mailing list expansion prohibited
    (7, 3): BounceClass.POLICY,  # security conversion required but not possible
    (7, 4): BounceClass.POLICY,  # security features not supported
    (7, 5): BounceClass.POLICY,  # cryptographic failure
    (7, 6): BounceClass.POLICY,  # cryptographic algorithm not supported
    (7, 7): BounceClass.POLICY,  # message integrity failure
    (7, 8): BounceClass.AUTHENTICATION_FAILED,  # RFC 4954: credentials invalid
    (7, 9): BounceClass.AUTHENTICATION_FAILED,  # RFC 4954: mechanism too weak
    (7, 10): BounceClass.TLS_REQUIRED,  # RFC 5248: encryption needed
    (7, 11): BounceClass.TLS_REQUIRED,  # RFC 4954: encryption required for mechanism
    (7, 12): BounceClass.AUTHENTICATION_FAILED,  # RFC 4954: password transition needed
    (7, 13): BounceClass.POLICY,  # RFC 5248: user account disabled (the sender's)
    (7, 14): BounceClass.POLICY,  # RFC 5248: trust relationship required
    (7, 15): BounceClass.POLICY,  # RFC 6710: priority level too low
    (7, 16): BounceClass.POLICY,  # RFC 6710: message too big for specified priority
    (7, 17): BounceClass.INACTIVE_MAILBOX,  # RFC 7293: mailbox owner has changed
    (7, 18): BounceClass.INACTIVE_MAILBOX,  # RFC 7293: domain owner has changed
    (7, 19): BounceClass.POLICY,  # RFC 7293: RRVS test cannot be completed
    (7, 20): BounceClass.AUTHENTICATION_FAILED,  # RFC 7372: no passing DKIM signature
    (7, 21): BounceClass.AUTHENTICATION_FAILED,  # RFC 7372: no acceptable DKIM sig
    (7, 22): BounceClass.AUTHENTICATION_FAILED,  # RFC 7372: no author-matched DKIM sig
    (7, 23): BounceClass.AUTHENTICATION_FAILED,  # RFC 7372: SPF validation failed
    (7, 24): BounceClass.AUTHENTICATION_FAILED,  # RFC 7372: SPF validation error
    (7, 25): BounceClass.AUTHENTICATION_FAILED,  # RFC 7372: reverse DNS check failed
    (7, 26): BounceClass.AUTHENTICATION_FAILED,  # RFC 7372: multiple auth checks failed
    (7, 27): BounceClass.AUTHENTICATION_FAILED,  # RFC 7505: sender address has null MX
    (7, 28): BounceClass.RATE_LIMITED,  # IANA registry: mail flood detected
    (7, 29): BounceClass.AUTHENTICATION_FAILED,  # RFC 8617: ARC validation failure
    (7, 30): BounceClass.TLS_REQUIRED,  # RFC 8689: REQUIRETLS support required
}

# Where the permanent form means something else than the transient one.  A 4.4.4 is a
# routing lookup that failed for now; Postfix answers NXDOMAIN and "no MX, no A" with
# 5.4.4, which says the domain cannot receive mail at all.
_SPECIFIC_PERMANENT: Final[dict[tuple[int, int], BounceClass]] = {
    (4, 4): BounceClass.BAD_DOMAIN,
}

# Codes too coarse to trust over the text: "other" details (X.n.0), the catch-all policy
# refusal 5.7.1 that providers use for spam, reputation and authentication alike, and
# X.4.1, which Microsoft uses for "Recipient address rejected: Access denied".  For
# these the regular expressions get the first word; the value here is the fallback.
_COARSE: Final[dict[tuple[int, int], BounceClass]] = {
    (0, 0): BounceClass.UNCLASSIFIED,
    (1, 0): BounceClass.INVALID_RECIPIENT,
    (2, 0): BounceClass.INACTIVE_MAILBOX,
    (2, 4): BounceClass.UNCLASSIFIED,  # mailing list expansion problem
    (3, 0): BounceClass.UNCLASSIFIED,
    (3, 3): BounceClass.UNCLASSIFIED,
    (3, 5): BounceClass.UNCLASSIFIED,
    (4, 0): BounceClass.BAD_CONNECTION,
    (4, 1): BounceClass.NO_ANSWER,
    (5, 0): BounceClass.UNCLASSIFIED,
    (7, 0): BounceClass.POLICY,
    (7, 1): BounceClass.POLICY,
}

# Fallback by subject alone (RFC 3463 §3) when the detail is unknown to us.
_BY_SUBJECT: Final[dict[int, BounceClass]] = {
    1: BounceClass.INVALID_RECIPIENT,
    2: BounceClass.INACTIVE_MAILBOX,
    3: BounceClass.UNCLASSIFIED,
    4: BounceClass.BAD_CONNECTION,
    5: BounceClass.UNCLASSIFIED,
    6: BounceClass.UNCLASSIFIED,  # media/content conversion, not spam
    7: BounceClass.POLICY,
}

# Bare reply codes that name a cause without an enhanced code (RFC 5321 §4.2.3,
# RFC 4954 §6).  Codes such as 550 or 554 say nothing reliable and stay unclassified.
_BY_REPLY_CODE: Final[dict[int, BounceClass]] = {
    530: BounceClass.AUTHENTICATION_FAILED,  # RFC 4954: authentication required
    535: BounceClass.AUTHENTICATION_FAILED,  # RFC 4954: credentials invalid
    538: BounceClass.TLS_REQUIRED,  # RFC 4954: encryption required for mechanism
    551: BounceClass.INVALID_RECIPIENT,  # user not local
    553: BounceClass.INVALID_RECIPIENT,  # mailbox name not allowed
}


# ------------------------------------------------------------------------------------
# Reply-text rules
# ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """A regular expression over the reply text and the class it implies.

    ``transient`` overrides ``permanent`` for 4xx replies where the same words mean
    something weaker (a DNS lookup that failed now is not a domain that does not exist).
    """

    pattern: re.Pattern[str]
    permanent: BounceClass
    transient: BounceClass | None = None


def _rule(pattern: str, permanent: BounceClass, transient: BounceClass | None = None) -> _Rule:
    return _Rule(re.compile(pattern, re.IGNORECASE), permanent, transient)


# Ordered: the first match wins, so the narrow rules come before the broad ones.
# Seeded from the wording of the large providers and KumoMTA's bounce-classify rules;
# they are a fallback for coarse codes only and deliberately conservative.
_RULES: Final[tuple[_Rule, ...]] = (
    _rule(
        r"too many recipients|recipient limit|recipients? (count )?exceeded",
        BounceClass.TOO_MANY_RECIPIENTS,
    ),
    _rule(
        r"starttls|\btls\b.{0,30}\b(?:required|needed|mandatory)"
        r"|encryption (?:is )?(?:required|needed)|requiretls",
        BounceClass.TLS_REQUIRED,
    ),
    _rule(
        r"\b(?:spf|dkim|dmarc|arc)\b|sender policy framework"
        r"|unauthenticated (?:mail|email|sender)"
        r"|authentication (?:failed|required|failure)|reverse dns|\bptr\b",
        BounceClass.AUTHENTICATION_FAILED,
    ),
    _rule(
        r"over ?quota|quota (?:exceeded|full)"
        r"|(?:mailbox|inbox|account|storage)\b.{0,40}\b(?:is )?(?:full|exceeded)"
        r"|insufficient (?:system )?storage",
        BounceClass.MAILBOX_FULL,
    ),
    _rule(
        r"(?:account|mailbox|user|recipient)\b.{0,30}\b(?:disabled|inactive"
        r"|deactivated|suspended|expired|locked|closed)"
        r"|no longer (?:active|in use|available)",
        BounceClass.INACTIVE_MAILBOX,
    ),
    _rule(
        r"rate ?limit|too many (?:messages|connections|emails|mails|concurrent)"
        r"|throttl|unusual rate|sending limit|mail flood|\[TSS?0\d\]"
        r"|greylist|graylist",
        BounceClass.RATE_LIMITED,
    ),
    # URL block lists judge the links in the message, so they are about content.
    _rule(
        r"\buribl\b|\bsurbl\b"
        r"|(?:url|link|domain in (?:the )?message)\b.{0,30}"
        r"\b(?:blacklist|blocklist|block list|listed)",
        BounceClass.SPAM_CONTENT,
    ),
    _rule(
        r"spamhaus|spamcop|barracuda|\brbl\b|dnsbl|blocked using|block ?list"
        r"|black ?list|reputation|listed (?:at|on|in)|client host .{0,60}blocked",
        BounceClass.SPAM_BLOCK,
    ),
    _rule(
        r"spam|unsolicited|junk|virus|malware|phishing"
        r"|suspicious (?:content|link|url)|content (?:filter|rejected|policy)",
        BounceClass.SPAM_CONTENT,
    ),
    # The sender's own address refused is a policy problem of ours, not a bad
    # recipient; this must precede the recipient rule, which also matches
    # "address ... rejected".
    _rule(
        r"sender (?:address|domain)\b.{0,30}\b(?:rejected|invalid|not found|unknown)",
        BounceClass.POLICY,
    ),
    _rule(
        r"user unknown|unknown user"
        r"|no such (?:user|mailbox|recipient|address|account)"
        r"|(?:recipient|address|user|mailbox|account)\b.{0,40}\b(?:does not exist"
        r"|doesn't exist|not found|unknown|rejected|invalid)"
        r"|invalid recipient|not a valid (?:mailbox|recipient)"
        r"|unrouteable address|user not found",
        BounceClass.INVALID_RECIPIENT,
    ),
    _rule(
        r"name service error|host not found|domain not found|no such domain"
        r"|nxdomain|servfail|\bdns\b|no mx|null mx|domain (?:does not|doesn't) exist",
        BounceClass.BAD_DOMAIN,
        BounceClass.DNS_FAILURE,
    ),
    _rule(
        r"timed? ?out|no answer|connection refused|not responding|unreachable",
        BounceClass.NO_ANSWER,
    ),
    _rule(
        r"connection (?:reset|closed|lost|dropped)|lost connection|broken pipe"
        r"|unexpected (?:eof|disconnect)|handshake",
        BounceClass.BAD_CONNECTION,
    ),
    _rule(
        r"message (?:has )?expired|delivery time expired|queue lifetime"
        r"|too long in (?:the )?queue",
        BounceClass.MESSAGE_EXPIRED,
    ),
    _rule(
        r"policy|relay(?:ing)? (?:denied|not permitted|access denied)|not permitted"
        r"|access denied|administrative prohibition|prohibited|blocked|denied",
        BounceClass.POLICY,
    ),
)


def _match_rules(reply: str, permanent: bool) -> BounceClass | None:
    for rule in _RULES:
        if rule.pattern.search(reply):
            if not permanent and rule.transient is not None:
                return rule.transient
            return rule.permanent
    return None


def _split_reply(
    code: int | None, enhanced: str | None, reply: str | None
) -> tuple[int | None, tuple[int, int, int] | None]:
    """Fill a missing code or enhanced code from the reply text, if it carries them."""
    parsed = parse_enhanced_code(enhanced)
    if reply is not None and (code is None or parsed is None):
        match = _REPLY_PREFIX_RE.match(reply)
        if match is not None:
            if code is None:
                code = int(match.group(1))
            if parsed is None:
                parsed = parse_enhanced_code(match.group(2))
    return code, parsed


def classify(code: int | None, enhanced: str | None, reply: str | None) -> BounceClass:
    """Name the cause of a refusal.

    ``code`` is the three-digit reply code (None when there was no reply, e.g. a
    connect timeout), ``enhanced`` the RFC 3463 code, ``reply`` the full reply text.  A
    missing code or enhanced code is read from the start of ``reply`` when present.
    """
    code, parsed = _split_reply(code, enhanced, reply)
    enhanced_text = None if parsed is None else ".".join(map(str, parsed))
    permanent = is_permanent(code, enhanced_text)
    text = reply or ""

    if parsed is not None:
        klass, subject, detail = parsed
        key = (subject, detail)
        # 1. A precise enhanced code wins over anything the text says.
        if key not in _COARSE:
            if klass == 5 and key in _SPECIFIC_PERMANENT:
                return _SPECIFIC_PERMANENT[key]
            if key in _SPECIFIC:
                return _SPECIFIC[key]
        # 2. A coarse code is refined by the text, then falls back to its own meaning.
        by_text = _match_rules(text, permanent)
        if by_text is not None:
            return by_text
        if key in _COARSE:
            return _COARSE[key]
        return _BY_SUBJECT.get(subject, BounceClass.UNCLASSIFIED)

    # 3. No enhanced code: the text, then the bare reply code.
    by_text = _match_rules(text, permanent)
    if by_text is not None:
        return by_text
    if code is not None and code in _BY_REPLY_CODE:
        return _BY_REPLY_CODE[code]
    return BounceClass.UNCLASSIFIED


_TOO_MANY_RECIPIENTS_RE: Final = re.compile(r"too many recipients", re.IGNORECASE)


def _is_too_many_recipients(code: int | None, enhanced: str | None, reply: str | None) -> bool:
    parsed = parse_enhanced_code(enhanced)
    if parsed is not None and parsed[1:] == (5, 3):
        return True
    # RFC 5321 §4.5.3.1.10: some servers still answer a recipient limit with 552
    # (and no enhanced code); clients SHOULD treat that 552 as temporary.
    if code != 552 or reply is None:
        return False
    return _TOO_MANY_RECIPIENTS_RE.search(reply) is not None


def is_permanent(code: int | None, enhanced: str | None, *, reply: str | None = None) -> bool:
    """Whether a refusal ends delivery for this recipient (a bounce) or may be retried.

    The reply code decides (RFC 5321 §4.2.1: 5yz is a permanent negative completion);
    the enhanced code's class only decides when there is no reply code.  One exception,
    following KumoMTA: "too many recipients" (X.5.3, or a 552 saying so) is transient
    even with a 5xx, because the recipient itself is fine and RFC 5321 §4.5.3.1.10 tells
    the client to send the rest in a later transaction.  No code at all (a timeout, a
    reset) is transient: the queue lifetime bounds it, not a guess.
    """
    if _is_too_many_recipients(code, enhanced, reply):
        return False
    if code is not None:
        return 500 <= code <= 599
    parsed = parse_enhanced_code(enhanced)
    return parsed is not None and parsed[0] == 5


# ------------------------------------------------------------------------------------
# Server hints
# ------------------------------------------------------------------------------------

_UNIT_SECONDS: Final[dict[str, float]] = {"s": 1.0, "m": 60.0, "h": 3600.0}

# "try again in 60 seconds", "Please retry in 5 minutes", "try again after 1 hour",
# "retry in 30s" (Postal's smtp_sender.rb honours the first two forms).
_HINT_RE: Final = re.compile(
    r"\b(?:try(?:\s+again)?|retry)\s+(?:again\s+)?(?:in|after)\s+"
    r"(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b",
    re.IGNORECASE,
)


def parse_retry_hint(reply: str) -> float | None:
    """Seconds the server asked us to wait, from text like "try again in 5 minutes"."""
    match = _HINT_RE.search(reply)
    if match is None:
        return None
    amount, unit = match.groups()
    return float(amount) * _UNIT_SECONDS[unit[0].lower()]


# ------------------------------------------------------------------------------------
# Decisions
# ------------------------------------------------------------------------------------


class RetryAction(enum.StrEnum):
    """The three outcomes of a decision; also the state-machine edge taken."""

    RETRY = "retry"  # stays queued as deferred
    BOUNCE = "bounce"  # terminal: bounced (permanent refusal)
    EXPIRE = "expire"  # terminal: expired (lifetime or expires_at reached)


@dataclass(frozen=True, slots=True)
class Retry:
    """Try the recipient again at ``at`` (``delay`` seconds after the decision)."""

    at: datetime
    delay: float
    bounce_class: BounceClass
    action: RetryAction = RetryAction.RETRY


@dataclass(frozen=True, slots=True)
class Bounce:
    """The refusal is permanent; the recipient is bounced."""

    bounce_class: BounceClass
    action: RetryAction = RetryAction.BOUNCE


@dataclass(frozen=True, slots=True)
class Expire:
    """No retry fits before the deadline; the recipient is expired.

    ``last_class`` is the class of the last deferral, kept for reporting;
    ``bounce_class`` is always ``message_expired``.
    """

    last_class: BounceClass
    bounce_class: BounceClass = BounceClass.MESSAGE_EXPIRED
    action: RetryAction = RetryAction.EXPIRE


RetryDecision = Retry | Bounce | Expire

# 2**62 times any sane first delay is far past any cap; stops the float overflow that a
# huge attempt number would otherwise cause.
_MAX_EXPONENT: Final = 62


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware; pass datetime.now(UTC)")


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Capped exponential backoff with jitter and a queue lifetime, all in seconds.

    Defaults follow research/delivery.md §c.2: 5 min first retry, doubling, capped at
    1 h, jitter 0.8 to 1.2, given up after 72 h.  Streams that carry OTPs or reminders
    set a shorter ``max_age`` or a per-message ``expires_at`` so mail expires instead
    of arriving late.
    """

    first_delay: float = 300.0
    cap: float = 3600.0
    max_age: float = 259_200.0
    jitter_min: float = 0.8
    jitter_max: float = 1.2

    def __post_init__(self) -> None:
        if self.first_delay <= 0:
            raise ValueError("first_delay must be positive")
        if self.cap < self.first_delay:
            raise ValueError("cap must be at least first_delay")
        if self.max_age <= 0:
            raise ValueError("max_age must be positive")
        if not 0 < self.jitter_min <= self.jitter_max:
            raise ValueError("jitter bounds must satisfy 0 < jitter_min <= jitter_max")

    def next_delay(self, attempt_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempt_number``-th failed attempt (1-based).

        ``min(cap, first_delay * 2**(n-1)) * jitter``: jitter spreads retries of a burst
        deferred together so they do not hit the destination in lock-step.  Because the
        jitter is applied after the cap, a delay may exceed ``cap`` by ``jitter_max``.
        Pass a seeded ``rng`` for reproducible schedules.
        """
        if attempt_number < 1:
            raise ValueError("attempt_number is 1-based")
        exponent = min(attempt_number - 1, _MAX_EXPONENT)
        base = min(self.cap, self.first_delay * float(2**exponent))
        # Jitter only de-synchronises retries; SystemRandom is used for the unseeded
        # default simply because it needs no seed management (and no S311 waiver).
        source = rng if rng is not None else random.SystemRandom()
        return base * source.uniform(self.jitter_min, self.jitter_max)

    def deadline(self, accepted_at: datetime, expires_at: datetime | None) -> datetime:
        """The moment after which no attempt may start: lifetime end or expiry."""
        _require_aware("accepted_at", accepted_at)
        lifetime_end = accepted_at + timedelta(seconds=self.max_age)
        if expires_at is None:
            return lifetime_end
        _require_aware("expires_at", expires_at)
        return min(lifetime_end, expires_at)

    def decide(
        self,
        attempt: Attempt,
        attempts_so_far: int,
        accepted_at: datetime,
        now: datetime,
        expires_at: datetime | None,
        hint_seconds: float | None = None,
        *,
        rng: random.Random | None = None,
    ) -> RetryDecision:
        """Decide what follows an attempt that did not deliver.

        ``attempts_so_far`` counts attempts made including ``attempt`` (so it is ≥ 1).
        ``hint_seconds`` overrides the hint otherwise parsed from ``attempt.reply``.

        * A ``failed`` attempt bounces, unless its reply is "too many recipients", which
          is retried (see ``is_permanent``).
        * A deferral at or past the deadline (``max_age`` after acceptance, or
          ``expires_at`` if earlier) expires.  So does a deferral whose next retry would
          fall at or past the deadline: a retry that cannot happen in time is not
          scheduled, and the sender learns at once rather than at the deadline.
        * Otherwise retry after the larger of the schedule's delay and the server's
          hint: never sooner than the server asked, nor sooner than our own back-off.
        """
        if attempt.status is AttemptStatus.DELIVERED:
            raise ValueError("decide() is for attempts that did not deliver")
        if attempts_so_far < 1:
            raise ValueError("attempts_so_far counts the attempt being decided (>= 1)")
        _require_aware("now", now)
        deadline = self.deadline(accepted_at, expires_at)

        bounce_class = classify(attempt.smtp_code, attempt.enhanced_code, attempt.reply)
        if attempt.status is AttemptStatus.FAILED and not _is_too_many_recipients(
            attempt.smtp_code, attempt.enhanced_code, attempt.reply
        ):
            return Bounce(bounce_class)

        if now >= deadline:
            return Expire(bounce_class)

        delay = self.next_delay(attempts_so_far, rng)
        if hint_seconds is None and attempt.reply is not None:
            hint_seconds = parse_retry_hint(attempt.reply)
        if hint_seconds is not None and hint_seconds > delay:
            delay = hint_seconds

        retry_at = now + timedelta(seconds=delay)
        if retry_at >= deadline:
            return Expire(bounce_class)
        return Retry(at=retry_at, delay=delay, bounce_class=bounce_class)
