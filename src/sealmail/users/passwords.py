"""Password policy after NIST SP 800-63B §5.1.1.2 (memorized secrets).

Length, and a refusal list of passwords known to be common or breached: nothing else.
SP 800-63B says verifiers SHALL compare new passwords against such a list and SHOULD NOT
impose composition rules ("one digit, one symbol") or periodic changes.  The list is the
bundled ``common_passwords.txt`` (one a line, compared case-insensitively).
"""

from __future__ import annotations

import enum
import functools
import unicodedata
from importlib import resources

# With MFA required an 8-character minimum is what §5.1.1.2 asks; 64 is the least a
# verifier SHALL accept as a maximum, and a passphrase may be longer.
MIN_LENGTH = 8
MAX_LENGTH = 256


class Refusal(enum.StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    COMMON = "common"
    CONTEXT = "context"

    @property
    def text(self) -> str:
        return {
            Refusal.TOO_SHORT: f"Use at least {MIN_LENGTH} characters; a few unrelated words work well.",
            Refusal.TOO_LONG: f"Use at most {MAX_LENGTH} characters.",
            Refusal.COMMON: "That password is on a list of common or breached passwords; choose another.",
            Refusal.CONTEXT: "Do not use your email address or the service's name as a password.",
        }[self]


@functools.cache
def common_passwords() -> frozenset[str]:
    text = resources.files("sealmail.users").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def normalize(password: str) -> str:
    # §5.1.1.2: Unicode passwords SHOULD be normalized (NFKC) before hashing.
    return unicodedata.normalize("NFKC", password)


def check(password: str, *, email: str = "") -> Refusal | None:
    """Why ``password`` is refused, or None when it may be used."""
    value = normalize(password)
    if len(value) < MIN_LENGTH:
        return Refusal.TOO_SHORT
    if len(value) > MAX_LENGTH:
        return Refusal.TOO_LONG
    folded = value.casefold()
    if folded in common_passwords():
        return Refusal.COMMON
    local = email.split("@", 1)[0].casefold()
    # Context-specific words SHALL be refused as well (§5.1.1.2).
    if folded in {email.casefold(), local, "sealmail", "sealmail1", "sealmail123"} or (
        len(local) >= 4 and folded.startswith(local) and len(folded) - len(local) <= 4
    ):
        return Refusal.CONTEXT
    return None
