"""Segment arithmetic of TS 23.038/23.040: 160/153 GSM-7 septets, 70/67 UCS-2 units."""

from __future__ import annotations

import pytest

from sealmail.sms import segments
from sealmail.sms.segments import Coding


def test_one_segment_up_to_160_gsm_characters() -> None:
    assert segments.split("a" * 160).parts == (b"a" * 160,)
    two = segments.split("a" * 161)
    assert two.coding is Coding.GSM and [len(p) for p in two.parts] == [153, 8]


def test_extension_characters_cost_two_septets_and_stay_whole() -> None:
    assert segments.septets("[]") == 4
    assert segments.count("{" * 80) == 1  # 160 septets
    split = segments.split("a" * 152 + "{" + "b" * 10)
    # 152 + 2 > 153: the brace opens the second segment, never split from its escape.
    assert split.parts == (b"a" * 152, b"{" + b"b" * 10)


def test_non_gsm_text_goes_as_ucs2_in_67_unit_parts() -> None:
    text = "Clínica São José " * 5  # 85 characters, accents outside the ASCII GSM subset
    split = segments.split(text)
    assert split.coding is Coding.UCS2
    assert [len(p) // 2 for p in split.parts] == [67, 18]
    assert b"".join(split.parts).decode("utf-16-be") == text
    assert segments.split("é" * 70).parts == (("é" * 70).encode("utf-16-be"),)


def test_a_surrogate_pair_is_never_cut() -> None:
    text = "x" * 66 + "\U0001f600" + "y" * 10  # the emoji's two units straddle unit 67
    split = segments.split(text)
    assert [len(p) // 2 for p in split.parts] == [66, 12]
    for part in split.parts:
        part.decode("utf-16-be")  # each part is well-formed UTF-16 on its own


def test_udh_and_the_255_segment_bound() -> None:
    assert segments.udh(300, 3, 2) == bytes([5, 0, 3, 300 & 0xFF, 3, 2])
    with pytest.raises(segments.TooLong):
        segments.split("a" * (153 * 255 + 1))
