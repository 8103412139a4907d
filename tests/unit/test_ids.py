"""``new_id``: the C base32 path mints exactly what the original digit loop did."""

from __future__ import annotations

import re
import time

import pytest

from sealmail import ids

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference(prefix: str, millis: int, random80: bytes) -> str:
    """The original definition: 130 bits, 5 at a time from the right, Crockford digits."""
    value = (millis << 80) | int.from_bytes(random80, "big")
    digits = []
    for _ in range(26):
        digits.append(ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(digits))}"


@pytest.mark.parametrize("millis", [0, 1, 1_764_800_000_000, 2**48 - 1])
@pytest.mark.parametrize(
    "random80", [bytes(10), b"\xff" * 10, bytes(range(10)), bytes.fromhex("9f3ac10e5b7d2864e0a1")]
)
def test_new_id_matches_the_reference_encoding(
    monkeypatch: pytest.MonkeyPatch, millis: int, random80: bytes
) -> None:
    monkeypatch.setattr(ids.time, "time", lambda: millis / 1000)
    monkeypatch.setattr(ids.os, "urandom", lambda n: random80[:n])
    assert ids.new_id("msg") == reference("msg", millis, random80)


def test_new_ids_are_well_formed_unique_and_time_ordered() -> None:
    minted = [ids.new_id("rcp") for _ in range(2000)]
    assert all(re.fullmatch(r"rcp_[0-9A-HJKMNP-TV-Z]{26}", i) for i in minted)
    assert len(set(minted)) == len(minted)
    earlier = ids.new_id("x")
    deadline = time.monotonic() + 2
    while (later := ids.new_id("x"))[2:12] == earlier[2:12] and time.monotonic() < deadline:
        pass  # wait for the millisecond to move on
    assert later[2:12] > earlier[2:12]


@pytest.mark.parametrize("millis", [0, 1_764_800_000_000, 2**48 - 1])
def test_new_ids_match_the_reference_encoding_of_their_random_digits(
    monkeypatch: pytest.MonkeyPatch, millis: int
) -> None:
    """A batch's ids are the reference encoding of (time, 80 random bits), where the random bits
    are the low five bits of one random byte per digit."""
    noise = bytes((i * 37 + 11) % 256 for i in range(16 * 3))
    monkeypatch.setattr(ids.time, "time", lambda: millis / 1000)
    monkeypatch.setattr(ids.os, "urandom", lambda n: noise[:n])
    minted = ids.new_ids("ctc", 3)
    for k, got in enumerate(minted):
        bits = 0
        for b in noise[16 * k : 16 * k + 16]:
            bits = (bits << 5) | (b & 31)
        assert got == reference("ctc", millis, bits.to_bytes(10, "big"))


def test_new_ids_are_well_formed_unique_and_share_new_ids_time_digits() -> None:
    minted = ids.new_ids("ctc", 5000)
    assert all(re.fullmatch(r"ctc_[0-9A-HJKMNP-TV-Z]{26}", i) for i in minted)
    assert len(set(minted)) == len(minted)
    assert ids.new_ids("x", 0) == []
    # Every digit value turns up in the random part: no bias to a sub-alphabet.
    assert {c for i in minted for c in i[14:]} == set(ALPHABET)
