"""Outbound TLS policy levels and how they combine.

The levels follow Postfix's ``smtp_tls_security_level`` vocabulary, ordered from weakest
to strongest.  A destination's published policy (MTA-STS ``enforce``, usable DANE TLSA)
may only *raise* the level the sender asked for, never lower it (RFC 8461 §5,
RFC 7672 §2.2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TlsPolicy(enum.StrEnum):
    """What a sender demands of the connection that carries a message."""

    OPPORTUNISTIC = "opportunistic"  # Postfix "may": TLS when offered, plaintext otherwise
    REQUIRE = "require"  # Postfix "encrypt": TLS mandatory, certificate not checked
    REQUIRE_VERIFIED = "require_verified"  # Postfix "secure": chain + MX name verified
    DANE = "dane"  # RFC 7672: TLSA from a DNSSEC-validating resolver

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: TlsPolicy) -> TlsPolicy:
        """The stronger of the two levels."""
        return self if self.rank >= other.rank else other


_RANK = {
    TlsPolicy.OPPORTUNISTIC: 0,
    TlsPolicy.REQUIRE: 1,
    TlsPolicy.REQUIRE_VERIFIED: 2,
    TlsPolicy.DANE: 3,
}


class TlsRequirement(enum.StrEnum):
    """What the sender of one message asked of its transport (RFC 8689), stored with it.

    ``REQUIRETLS`` — the ``REQUIRETLS`` MAIL FROM parameter (§4): every hop over verified
    TLS to a server that itself advertises REQUIRETLS, or a permanent failure (5.7.30).
    ``NOT_REQUIRED`` — the ``TLS-Required: No`` header field (§5): recipient-side policies
    (MTA-STS, DANE) may be ignored.  Sealmail honours it only where nothing else asks for TLS
    (see ``relaxation_refused``); REQUIRETLS wins when both are present (§4.1).
    """

    REQUIRETLS = "requiretls"
    NOT_REQUIRED = "no"


def relaxation_refused(requested: TlsPolicy, *, phi: bool, stream: Stream) -> str | None:
    """Why a ``TLS-Required: No`` header is not honoured for this message, or None.

    The header waives only what the *destination* publishes (MTA-STS ``enforce``, DANE),
    and only for mail whose own policy already allowed plaintext: the requested level is
    opportunistic, the stream has no floor, and DLP found nothing.  A tenant's or stream's
    TLS floor, and PHI, are never lowered by a header a client can write.
    """
    if phi:
        return "DLP found PHI in the message"
    if STREAM_MINIMUM[stream] is not TlsPolicy.OPPORTUNISTIC:
        return f"the {stream} stream requires TLS"
    if requested is not TlsPolicy.OPPORTUNISTIC:
        return f"the message's policy requires TLS ({requested})"
    return None


class Stream(enum.StrEnum):
    """Message streams, each with its own defaults (Postmark's ``MessageStream``)."""

    TRANSACTIONAL = "transactional"
    PHI = "phi"
    BROADCAST = "broadcast"


# The phi stream may never be sent in the clear: opportunistic TLS silently downgrades
# to plaintext when STARTTLS is stripped, so it is refused there outright.
STREAM_MINIMUM: dict[Stream, TlsPolicy] = {
    Stream.TRANSACTIONAL: TlsPolicy.OPPORTUNISTIC,
    Stream.BROADCAST: TlsPolicy.OPPORTUNISTIC,
    Stream.PHI: TlsPolicy.REQUIRE,
}


class VerifiedBy(enum.StrEnum):
    """What vouched for the peer's certificate on a delivered attempt."""

    NONE = "none"
    PKIX = "pkix"
    MTA_STS = "mta-sts"
    DANE = "dane"


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """What a destination domain publishes about itself, gathered before delivery.

    ``sts_mode`` is the MTA-STS mode (``enforce``/``testing``/``none``) or ``None`` when
    no policy exists; ``sts_mx_patterns`` the ``mx:`` lines of an enforce policy;
    ``dane_usable`` is True only when TLSA records came back with the AD bit set from
    a validating resolver (RFC 7672 §2.2).
    """

    sts_mode: str | None = None
    sts_mx_patterns: tuple[str, ...] = ()
    dane_usable: bool = False


def effective_policy(requested: TlsPolicy, destination: DestinationPolicy) -> TlsPolicy:
    """The level actually enforced for one destination.

    MTA-STS ``enforce`` demands a PKIX-verified certificate for an MX matching the
    policy (RFC 8461 §4); usable DANE records demand DANE authentication
    (RFC 7672 §2.2).  Either can only raise the requested level.
    """
    level = requested
    if destination.sts_mode == "enforce":
        level = level.at_least(TlsPolicy.REQUIRE_VERIFIED)
    if destination.dane_usable:
        level = level.at_least(TlsPolicy.DANE)
    return level


def resolve_requested(
    stream: Stream,
    message_policy: TlsPolicy | None,
    tenant_policy: TlsPolicy | None,
    stream_default: TlsPolicy,
) -> TlsPolicy:
    """Combine message, tenant and stream settings; the stream minimum always holds.

    The message's own choice wins over the tenant's, which wins over the stream
    default, but none can go below the stream's floor.
    """
    chosen = message_policy or tenant_policy or stream_default
    return chosen.at_least(STREAM_MINIMUM[stream])


def mx_matches_sts(mx_host: str, patterns: tuple[str, ...]) -> bool:
    """RFC 8461 §4.1: an MX matches a pattern literally or via one leading ``*.`` label."""
    host = mx_host.rstrip(".").lower()
    for raw in patterns:
        pattern = raw.rstrip(".").lower()
        if pattern.startswith("*."):
            suffix = pattern[1:]
            head, _, rest = host.partition(".")
            if head and "." + rest == suffix:
                return True
        elif host == pattern:
            return True
    return False
