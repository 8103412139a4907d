"""``Discovery.nothing_to_find``: SecureLine skips discovery on the loop when every recipient
already has a usable OpenPGP key (issue 18), and only then."""

from __future__ import annotations

from sealmail.domain.secureline import KeyFact
from sealmail.secureline.discovery import Discovery
from sealmail.secureline.keydir import RecipientKeys


def keys(*facts: KeyFact) -> RecipientKeys:
    return RecipientKeys(tuple(facts), (), {}, {})


USABLE = KeyFact("AAAA", "uploaded", True)
EXPIRED = KeyFact("BBBB", "wkd", False, "expired on 2026-01-01")
SMIME_ONLY = RecipientKeys((), (KeyFact("CCCC", "uploaded", True),), {}, {})


def test_recipients_that_all_have_a_usable_openpgp_key_need_no_lookup() -> None:
    known = {"pat@patients.example": keys(EXPIRED, USABLE), "sam@patients.example": keys(USABLE)}
    assert Discovery.nothing_to_find(["Pat@patients.example ", "sam@patients.example"], known)


def test_a_recipient_without_a_usable_openpgp_key_is_still_looked_up() -> None:
    known = {
        "pat@patients.example": keys(USABLE),
        "old@patients.example": keys(EXPIRED),
        "none@patients.example": keys(),
        "smime@patients.example": SMIME_ONLY,
    }
    for other in ("old@patients.example", "none@patients.example", "smime@patients.example"):
        assert not Discovery.nothing_to_find(["pat@patients.example", other], known)
    # An address the caller did not read facts for is not assumed to have a key.
    assert not Discovery.nothing_to_find(["pat@patients.example", "new@patients.example"], known)
