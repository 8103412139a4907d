"""What may open a portal message, given how its notice travelled.

The portal notice is PHI-free, so it may go where the message could not: to a
destination without STARTTLS, through a man-in-the-middle that stripped STARTTLS, past
a certificate that does not verify.  But the notice carries the *link*, and whoever
holds the link and a sign-in factor opens the message.  The rule this module states:

    Whatever opens a portal message never crosses only a channel weaker than the
    message's required TLS level.

So an emailed sign-in code must itself meet the required level (it is sent with that
level as its TLS policy and never turned into another notice), and when the notice
went out below the level the recipient needs a factor that did not travel with it:
the sender-set passphrase, a code by another channel (SMS, issue 17), or a code mail
that did meet the level.  A tenant may loosen this only explicitly
(``secureline.portal_weak_notice = "allow_email_code"``), which the audit log records.

Pure: facts in, verdicts out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sealmail.domain.outcomes import TlsInfo
from sealmail.domain.tls_policy import TlsPolicy, VerifiedBy


class WeakNoticePolicy(enum.StrEnum):
    """Tenant setting ``secureline.portal_weak_notice``."""

    # Default: sign-in codes travel only at the message's required level.
    REQUIRE_STRONG_FACTOR = "require_strong_factor"
    # Explicit loosening: codes are mailed with opportunistic TLS, as before issue 11.
    ALLOW_EMAIL_CODE = "allow_email_code"


class NoticeStrength(enum.StrEnum):
    """How the notice that carried a hold's link travelled, against the required level."""

    MEETS = "meets"
    BELOW = "below"


class Channel(enum.StrEnum):
    """What carried a notice or a code (SMS arrives with issue 17)."""

    EMAIL = "email"
    SMS = "sms"


def tls_meets(level: TlsPolicy, tls: TlsInfo) -> bool:
    """Whether a delivered attempt's TLS session satisfies ``level``.

    ``opportunistic`` is met by anything, plaintext included; ``require`` by any TLS
    session; ``require_verified`` by a verified peer; ``dane`` only by a DANE match
    (RFC 7672 §2.2).
    """
    if level is TlsPolicy.OPPORTUNISTIC:
        return True
    if level is TlsPolicy.REQUIRE:
        return tls.version is not None
    if level is TlsPolicy.REQUIRE_VERIFIED:
        return tls.version is not None and tls.verified
    return tls.version is not None and tls.verified and tls.verified_by is VerifiedBy.DANE


def notice_strength(level: TlsPolicy, tls: TlsInfo) -> NoticeStrength:
    return NoticeStrength.MEETS if tls_meets(level, tls) else NoticeStrength.BELOW


def weak_notice_policy(secureline_settings: object) -> WeakNoticePolicy:
    """The tenant's choice; anything but an explicit ``allow_email_code`` is strict."""
    if isinstance(secureline_settings, dict):
        raw = secureline_settings.get("portal_weak_notice")
        if raw == WeakNoticePolicy.ALLOW_EMAIL_CODE:
            return WeakNoticePolicy.ALLOW_EMAIL_CODE
    return WeakNoticePolicy.REQUIRE_STRONG_FACTOR


@dataclass(frozen=True, slots=True)
class CodeMailPlan:
    """How (and whether) to email a sign-in code for one hold.

    ``send`` False means no code mail at all, ``why`` says so in a stable token
    (``tls_required``: the destination is known not to meet the level).  ``tls_policy``
    is the policy the code mail is queued with.
    """

    send: bool
    tls_policy: TlsPolicy
    why: str = ""


def plan_code_mail(
    policy: WeakNoticePolicy, required: TlsPolicy, destination_fails_required: bool
) -> CodeMailPlan:
    """Decide the code mail's TLS policy for a hold whose message requires ``required``.

    Strict (the default): the code mail carries the required level; when the
    destination is already known to fail that level it is not sent at all, because
    the transport would only defer it (never downgrade it) and the recipient should be
    told at once to use another factor.  Loosened: opportunistic, as before.
    """
    if policy is WeakNoticePolicy.ALLOW_EMAIL_CODE:
        return CodeMailPlan(True, TlsPolicy.OPPORTUNISTIC)
    if destination_fails_required and required is not TlsPolicy.OPPORTUNISTIC:
        return CodeMailPlan(False, required, "tls_required")
    return CodeMailPlan(True, required)
