"""The rules of texting, pure: numbers, the fixed texts, keywords, consent and quiet hours.

**No PHI in a text.**  Every text is one of the fixed templates below filled with the
organisation's name and a link or code — nothing from the message, not even its
subject.  ``render`` builds them and ``is_template_text`` is the independent check the
service runs on every text before it leaves: the text must be exactly a template filled
with the organisation name, a portal link of the expected shape and/or a code.

**Consent by purpose** (TCPA): ``notice``, ``code`` and ``reminder`` are separate
purposes.  ``STOP`` revokes every purpose at once; ``STOP REMINDERS`` only that one;
``START`` restores.  **Quiet hours** (default 21:00–08:00 in the contact's time zone)
hold notices and reminders; a code the person just asked for is sent at once.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sealmail.domain import zones

# ITU-T E.164: "+", a country code not starting with 0, at most 15 digits in all.
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
LINK = r"https?://[A-Za-z0-9.:\[\]-]+(?:/[A-Za-z0-9._~-]+)*/[A-Za-z0-9_-]{20,100}"
MAX_ORG = 40


class Purpose(enum.StrEnum):
    NOTICE = "notice"
    CODE = "code"
    REMINDER = "reminder"


class Template(enum.StrEnum):
    NOTICE = "notice"
    CODE = "code"
    REMINDER = "reminder"
    HELP = "help"
    STOPPED = "stopped"
    STARTED = "started"


TEMPLATES: dict[Template, str] = {
    Template.NOTICE: "You have a secure message from {org}: {link}",
    Template.CODE: "{code} is your {org} secure message sign-in code. It expires in {minutes} minutes.",
    Template.REMINDER: "Reminder: you have an unread secure message from {org}: {link}",
    Template.HELP: "{org} secure messages. Reply STOP to opt out, START to opt back in.",
    Template.STOPPED: "{org}: you are unsubscribed and will get no more of these texts. Reply START to undo.",
    Template.STARTED: "{org}: texts are on again. Reply STOP to opt out.",
}
PURPOSE_OF = {
    Template.NOTICE: Purpose.NOTICE,
    Template.CODE: Purpose.CODE,
    Template.REMINDER: Purpose.REMINDER,
}


class InvalidNumber(ValueError):
    pass


def e164(value: str) -> str:
    """The number in E.164, or ``InvalidNumber``: spaces, dots, dashes and brackets are
    dropped, but the ``+`` and the country code must be there (no guessing a country)."""
    cleaned = re.sub(r"[\s().-]", "", value or "")
    if not E164.match(cleaned):
        raise InvalidNumber("a phone number must be in E.164 form, e.g. +14155550123")
    return cleaned


def organization(name: str) -> str:
    """The organisation name as it may appear in a text: printable, one line, bounded."""
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    return clean[:MAX_ORG] or "Your care provider"


def render(template: Template, org: str, *, link: str = "", code: str = "", minutes: int = 10) -> str:
    return TEMPLATES[template].format(org=organization(org), link=link, code=code, minutes=minutes)


def is_template_text(text: str, org: str) -> bool:
    """Whether ``text`` is exactly one fixed template with the org name, a link and/or code."""
    name = re.escape(organization(org))
    for template in TEMPLATES.values():
        pattern = re.escape(template)
        pattern = pattern.replace(re.escape("{org}"), name).replace(re.escape("{link}"), LINK)
        pattern = pattern.replace(re.escape("{code}"), r"\d{4,10}").replace(
            re.escape("{minutes}"), r"\d{1,4}"
        )
        if re.fullmatch(pattern, text):
            return True
    return False


# -- inbound keywords (CTIA: STOP and HELP must always work) -----------------------------------
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "OPTIN"})
HELP_WORDS = frozenset({"HELP", "INFO"})
PURPOSE_WORDS = {
    "NOTICE": Purpose.NOTICE,
    "NOTICES": Purpose.NOTICE,
    "MESSAGES": Purpose.NOTICE,
    "CODE": Purpose.CODE,
    "CODES": Purpose.CODE,
    "REMINDER": Purpose.REMINDER,
    "REMINDERS": Purpose.REMINDER,
}


class Keyword(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Inbound:
    keyword: Keyword
    purposes: tuple[Purpose, ...]  # which purposes a STOP/START names (all when none)


def classify(body: str) -> Inbound:
    words = re.sub(r"[^A-Za-z ]", " ", body[:200]).upper().split()
    if not words:
        return Inbound(Keyword.OTHER, ())
    first = words[0]
    named = tuple(dict.fromkeys(PURPOSE_WORDS[w] for w in words[1:3] if w in PURPOSE_WORDS))
    purposes = named or tuple(Purpose)
    if first in STOP_WORDS:
        return Inbound(Keyword.STOP, purposes)
    if first in START_WORDS:
        return Inbound(Keyword.START, purposes)
    if first in HELP_WORDS:
        return Inbound(Keyword.HELP, ())
    return Inbound(Keyword.OTHER, ())


# -- quiet hours --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time = time(21, 0)
    end: time = time(8, 0)


def zone(name: str) -> ZoneInfo:
    try:
        return zones.zone(name)
    except ValueError as exc:
        raise InvalidNumber(str(exc)) from exc


def next_allowed(now: datetime, tz_name: str, purpose: Purpose, quiet: QuietHours = QuietHours()) -> datetime:
    """``now`` when a text of ``purpose`` may go now, else when quiet hours end (as UTC)."""
    if purpose is Purpose.CODE:
        return now
    local = now.astimezone(zone(tz_name))
    t = local.time()
    in_quiet = (
        (t >= quiet.start or t < quiet.end) if quiet.start > quiet.end else quiet.start <= t < quiet.end
    )
    if not in_quiet:
        return now
    day = local.date() if t < quiet.end else local.date() + timedelta(days=1)
    resume = datetime.combine(day, quiet.end, tzinfo=local.tzinfo)
    return resume.astimezone(now.tzinfo)
