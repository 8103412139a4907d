"""PGP/MIME's line-end canonicalization (RFC 3156 §3): the fast paths for mail that is
canonical already and for armor with bare LFs give exactly the two-step definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.crypto.pgp import _to_crlf

# Lines of a few bytes with every line-end and stray CR/LF mixture.
PIECES = st.sampled_from([b"a", b"bc", b" ", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r", b"=x"])
DATA = st.lists(PIECES, max_size=40).map(b"".join)


def definition(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@settings(max_examples=800, deadline=None)
@given(DATA)
def test_canonical_form_equals_the_definition(data: bytes) -> None:
    assert _to_crlf(data) == definition(data)


def test_canonical_input_and_lf_armor_take_the_short_paths_with_the_same_result() -> None:
    canonical = b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n"
    assert _to_crlf(canonical) is canonical  # no copy
    armor = b"-----BEGIN PGP MESSAGE-----\n\nwcBMA\n-----END PGP MESSAGE-----\n"
    assert _to_crlf(armor) == definition(armor)
    assert _to_crlf(b"a\r\rb\nc\r\n") == definition(b"a\r\rb\nc\r\n")
