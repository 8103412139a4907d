"""The plain-path shortcut answers exactly what aiosmtpd's full parser answers."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.smtpd.paths import simple_path


class _Limits:
    def __init__(self, local_part_limit: int) -> None:
        self.local_part_limit = local_part_limit


def full_parser(arg: str, local_part_limit: int = 0) -> tuple[str | None, str | None]:
    return SMTP._getaddr(_Limits(local_part_limit), arg)  # type: ignore[arg-type]  # only the limit is read


PIECES = st.sampled_from(
    ["<", ">", "@", ".", "a", "Z", "9", "-", "_", "+", "'", "~", "{", " ", "\t", "(", ")", '"', "[", "]",
     ":", ",", ";", "\\", "é", "=", "SIZE=12", " BODY=8BITMIME", "example.org", "x" * 70]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(pieces=st.lists(PIECES, max_size=14), limit=st.sampled_from([0, 3, 64]))
def test_shortcut_agrees_with_the_full_parser_whenever_it_answers(pieces: list[str], limit: int) -> None:
    arg = "".join(pieces)
    fast = simple_path(arg, limit)
    if fast is not None:
        assert fast == full_parser(arg, limit)


@pytest.mark.parametrize(
    "arg",
    [
        "<lee.ann@clinic.example>",
        "<lee+tag@clinic.example> SIZE=5120",
        " <a@b.c>  BODY=8BITMIME SMTPUTF8",
        "<o'brien@x-y.example>REQUIRETLS",
    ],
)
def test_plain_paths_take_the_shortcut(arg: str) -> None:
    assert simple_path(arg, 0) is not None
    assert simple_path(arg, 0) == full_parser(arg)


@pytest.mark.parametrize(
    "arg",
    ["<>", '<"a b"@c.example>', "<@relay:a@b.example>", "<a@[192.0.2.1]>", "<a..b@c.example>",
     "<a@b.example.>", "<a@b.example> (comment) SIZE=1", "<pé@b.example>", "a@b.example"],
)  # fmt: skip
def test_anything_unusual_is_left_to_the_full_parser(arg: str) -> None:
    assert simple_path(arg, 0) is None


def test_a_local_part_over_the_limit_is_refused_like_the_full_parser() -> None:
    assert simple_path("<abcdef@b.example>", 3) == (None, None) == full_parser("<abcdef@b.example>", 3)
