"""Link tokens: opaque, unforgeable, one kind each."""

from __future__ import annotations

import base64

import pytest

from sealmail.engagement import tokens
from sealmail.engagement.tokens import Kind, Token

KEY = b"k" * 32
RID = "rcp_01JD4X7R9Q8W6E5T3Y2U1I0OPA"


@pytest.mark.parametrize("kind", list(Kind))
def test_token_round_trips_for_its_own_kind_only(kind: Kind) -> None:
    text = tokens.make(KEY, Token(kind, RID, 7 if kind is Kind.CLICK else 0))
    assert tokens.read(KEY, text, kind) == Token(kind, RID, 7 if kind is Kind.CLICK else 0)
    for other in set(Kind) - {kind}:
        assert tokens.read(KEY, text, other) is None


def test_token_is_url_safe_and_carries_no_address() -> None:
    text = tokens.make(KEY, Token(Kind.UNSUBSCRIBE, RID))
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "@" not in base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("latin-1")


def test_every_altered_character_is_rejected() -> None:
    text = tokens.make(KEY, Token(Kind.CLICK, RID, 3))
    for i in range(len(text)):
        swapped = "A" if text[i] != "A" else "B"
        assert tokens.read(KEY, text[:i] + swapped + text[i + 1 :], Kind.CLICK) is None


def test_another_key_does_not_verify() -> None:
    text = tokens.make(KEY, Token(Kind.OPEN, RID))
    assert tokens.read(b"x" * 32, text, Kind.OPEN) is None


def test_a_forged_link_index_fails_the_mac() -> None:
    raw = bytearray(base64.urlsafe_b64decode(tokens.make(KEY, Token(Kind.CLICK, RID, 1)) + "=="))
    raw[3] = 2  # link index 1 -> 2, MAC unchanged
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert tokens.read(KEY, forged, Kind.CLICK) is None


@pytest.mark.parametrize("junk", ["", "x", "not base64!!", "A" * 500, "====", "%2e%2e"])
def test_junk_is_not_a_token(junk: str) -> None:
    assert tokens.read(KEY, junk, Kind.OPEN) is None
