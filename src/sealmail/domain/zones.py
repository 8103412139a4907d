"""Time zones named by people (a tenant's working hours, a patient's texting hours, an expiry
typed in the console): one check, one message, whatever the caller's error type."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HINT = "an IANA name from the IANA time zone database, like America/New_York or UTC"
# Files in the zone directory that are not IANA zones but this server's own settings
# (``localtime`` links to whatever /etc/localtime is): a contact or tenant in "localtime"
# would keep the hours of whichever machine happened to run the sweep or the claim.
SERVER_ALIASES = frozenset({"localtime", "posixrules"})


def zone(name: str) -> ZoneInfo:
    """The zone called ``name``; ``ValueError`` saying what is expected when there is none.

    Names longer than any IANA name (64) are refused before the lookup, which reads files."""
    if not name or len(name) > 64 or name in SERVER_ALIASES:
        raise ValueError(f"time zone {name[:64]!r}: {HINT}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"time zone {name!r}: {HINT}") from exc


def stored_zone(name: str) -> ZoneInfo:
    """A stored row's zone, UTC when it names none.

    Intake refuses unknown zones, but a row written otherwise (an old import, a fix by hand)
    must not stop a sweep or a claim that reads it: its clock is UTC's."""
    try:
        return zone(name)
    except ValueError:
        return ZoneInfo("UTC")
