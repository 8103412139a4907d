"""Pure marketing rules: purposes, PHI classes, and ``decide_send`` at every claim.

HIPAA sorts communications by purpose (research/marketing.md §3):

* **treatment** and **operations** (refill reminders, care coordination, the entity's own
  services) need no authorization, but a patient who asked not to get them is honoured;
* **fundraising** (45 CFR 164.514(f)) may go out until the patient opts out, and every
  message must carry that opt-out;
* **marketing** (164.501, 164.508(a)(3)) needs a signed, unexpired, unrevoked
  authorization; and any send paid for by a third party (``remunerated``) needs one that
  states the remuneration, whatever the purpose.

``decide_send`` takes the facts as they are at the moment a worker claims the recipient
and says send, defer (quiet hours, a frequency cap) or skip (with the reason).  It does no
I/O: the claim gate gathers the facts in the claim's transaction, so an opt-out written
before the claim is always seen by it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sealmail.domain import zones


class Purpose(enum.StrEnum):
    TREATMENT = "treatment"
    OPERATIONS = "operations"
    MARKETING = "marketing"
    FUNDRAISING = "fundraising"


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class PhiClass(enum.StrEnum):
    """How sensitive an attribute is; each class is a permission to see or segment on it."""

    NONE = "none"
    DEMOGRAPHIC = "demographic"
    CLINICAL = "clinical"
    SENSITIVE = "sensitive"  # 42 CFR Part 2, HIV, reproductive health: encrypted at rest


class ConsentAction(enum.StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"
    AUTHORIZE = "authorize"
    EXPIRE = "expire"


class ConsentState(enum.StrEnum):
    GRANTED = "granted"
    REVOKED = "revoked"
    AUTHORIZED = "authorized"
    EXPIRED = "expired"


# What each ledger action leaves as the current state.
STATE_AFTER: dict[ConsentAction, ConsentState] = {
    ConsentAction.GRANT: ConsentState.GRANTED,
    ConsentAction.REVOKE: ConsentState.REVOKED,
    ConsentAction.AUTHORIZE: ConsentState.AUTHORIZED,
    ConsentAction.EXPIRE: ConsentState.EXPIRED,
}

# 45 CFR 164.508(c)(2): statements every authorization must contain.
REQUIRED_STATEMENTS: tuple[str, ...] = ("right_to_revoke", "conditioning", "redisclosure")


class AuthorizationState(enum.StrEnum):
    """What one stored authorization is worth now (a compliance officer's view of it)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def authorization_state(
    revoked_at: datetime | None, expires_at: datetime, now: datetime
) -> AuthorizationState:
    """Revocation wins over expiry, as in ``decide_send``: 164.508(b)(5) ends the
    authorization when the revocation is received, whatever its expiry date says."""
    if revoked_at is not None:
        return AuthorizationState.REVOKED
    if expires_at <= now:
        return AuthorizationState.EXPIRED
    return AuthorizationState.ACTIVE


class ContactStatus(enum.StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Authorization:
    """The facts of the contact's newest authorization for the purpose."""

    expires_at: datetime
    revoked: bool
    remuneration: bool


@dataclass(frozen=True, slots=True)
class SendFacts:
    purpose: Purpose
    remunerated: bool
    contact_status: str
    consent: ConsentState | None  # None: the ledger says nothing for (purpose, channel)
    authorization: Authorization | None
    suppressed: bool
    sent_in_window: tuple[datetime, ...]  # this purpose's earlier sends inside the cap window
    cap: int | None  # at most this many sends of the purpose per window; None = no cap
    cap_window: timedelta
    tz: str
    quiet_start: int  # local hour quiet hours begin (inclusive)
    quiet_end: int  # local hour they end (exclusive); equal to start = no quiet hours
    now: datetime


@dataclass(frozen=True, slots=True)
class Send:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


Decision = Send | Defer | Skip


def decide_send(f: SendFacts) -> Decision:
    """Send, defer or skip one queued marketing message (see the module docstring).

    Skips come before defers: a message that must never go is never postponed instead.
    """
    skip = _skip_reason(f)
    if skip is not None:
        return Skip(skip)
    quiet = quiet_until(f.now, f.tz, f.quiet_start, f.quiet_end)
    if quiet is not None:
        return Defer(quiet, "quiet_hours")
    if f.cap is not None and len(f.sent_in_window) >= f.cap:
        # The cap frees up when the oldest send in the window leaves it.
        oldest = sorted(f.sent_in_window)[len(f.sent_in_window) - f.cap]
        return Defer(oldest + f.cap_window, "frequency_cap")
    return Send()


def _skip_reason(f: SendFacts) -> str | None:
    if f.contact_status != ContactStatus.ACTIVE:
        return f"contact_{f.contact_status}"
    if f.suppressed:
        return "suppressed"
    if f.consent in (ConsentState.REVOKED, ConsentState.EXPIRED) and f.purpose is not Purpose.MARKETING:
        return "fundraising_opt_out" if f.purpose is Purpose.FUNDRAISING else "opted_out"
    if f.purpose is Purpose.MARKETING or f.remunerated:
        return _authorization_problem(f)
    return None


def _authorization_problem(f: SendFacts) -> str | None:
    a = f.authorization
    if f.consent is ConsentState.REVOKED or (a is not None and a.revoked):
        return "authorization_revoked"
    if a is None or f.consent is None:
        return "no_authorization"
    if a.expires_at <= f.now or f.consent is ConsentState.EXPIRED:
        return "authorization_expired"
    if f.consent is not ConsentState.AUTHORIZED:
        return "no_authorization"
    if f.remunerated and not a.remuneration:
        return "remuneration_not_disclosed"
    return None


def quiet_until(now: datetime, tz: str, start: int, end: int) -> datetime | None:
    """When quiet hours end, if ``now`` falls inside them in the contact's zone; else None.

    A window may wrap midnight (21 → 8, the TCPA's 8 am–9 pm rule read the other way).
    """
    if start == end:
        return None
    zone = zones.stored_zone(tz)  # a bad stored zone must not fail the claim: UTC
    local = now.astimezone(zone)
    hour = local.hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    if not inside:
        return None
    day = local.date() if hour < end else local.date() + timedelta(days=1)
    wake = datetime(day.year, day.month, day.day, end, tzinfo=zone)
    return wake.astimezone(now.tzinfo)
