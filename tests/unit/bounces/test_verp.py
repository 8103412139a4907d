"""Signed VERP local parts: round trip, case folding, forgery."""

from __future__ import annotations

import pytest

from sealmail.domain import verp
from sealmail.ids import new_id

KEY = bytes(range(32))


def test_round_trip_gives_back_the_stored_id() -> None:
    rid = new_id("rcp")
    local = verp.local_part(KEY, rid)
    assert local.startswith("b+rcp_") and local == local.lower()
    assert len(local) <= 64  # RFC 5321 §4.5.3.1.1
    assert verp.verify(KEY, local) == rid


def test_an_mta_that_upper_cases_the_local_part_does_not_break_it() -> None:
    rid = new_id("rcp")
    assert verp.verify(KEY, verp.local_part(KEY, rid).upper()) == rid


def test_tag_carries_80_bits() -> None:
    local = verp.local_part(KEY, new_id("rcp"))
    assert len(local.rsplit(".", 1)[1]) * 5 == verp.TAG_BITS == 80


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s[:-1] + ("a" if s[-1] != "a" else "b"),  # tampered tag
        lambda s: s.replace("rcp_", "rcp_1", 1)[:-1],  # another id
        lambda s: s.rsplit(".", 1)[0],  # no tag
        lambda s: "x" + s,  # not our prefix
        lambda s: s + "a",  # tag too long
    ],
)
def test_forged_or_tampered_local_parts_do_not_verify(mutate: object) -> None:
    local = verp.local_part(KEY, new_id("rcp"))
    assert verp.verify(KEY, mutate(local)) is None  # type: ignore[operator]


def test_another_key_does_not_verify() -> None:
    local = verp.local_part(KEY, new_id("rcp"))
    assert verp.verify(bytes(32), local) is None


def test_a_tag_for_one_recipient_does_not_verify_another() -> None:
    a, b = new_id("rcp"), new_id("rcp")
    tag_a = verp.local_part(KEY, a).rsplit(".", 1)[1]
    assert verp.verify(KEY, f"b+{b.lower()}.{tag_a}") is None


def test_the_fast_tag_is_rfc_4648_base32_of_the_hmac() -> None:
    """The table-driven encoder gives what ``base64.b32encode`` gives, for many keys and ids."""
    import os

    for _ in range(2000):
        key, rid = os.urandom(32), new_id("rcp")
        assert verp._tag(key, rid) == verp._tag_reference(key, rid)
    # Every 10-bit value in every position: all-zero and all-one MACs are covered through the table.
    assert verp._PAIRS[0] == "aa" and verp._PAIRS[0x3FF] == "77" and len(set(verp._PAIRS)) == 1024
