"""Numbers, the fixed texts and their PHI check, keywords, quiet hours, and the SMPP codec."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from sealmail.sms import rules
from sealmail.sms.rules import Keyword, Purpose, Template
from sealmail.sms.smpp import pdu

LINK = "https://portal.example.org/p/" + "a1B2_-" * 7


@pytest.mark.parametrize("raw", ["+1 (415) 555-0123", "+14155550123", "+44 20 7946 0958", "+4930.1234567"])
def test_e164_accepts_international_numbers(raw: str) -> None:
    assert rules.e164(raw).startswith("+")


@pytest.mark.parametrize(
    "raw", ["4155550123", "+0123456789", "+1415555012345678", "+1-415-CALL-NOW", "", "+12"]
)
def test_e164_refuses_what_is_not_a_full_international_number(raw: str) -> None:
    with pytest.raises(rules.InvalidNumber):
        rules.e164(raw)


def test_each_template_passes_the_phi_check_and_anything_added_fails() -> None:
    org = "Riverside Clinic"
    for template in Template:
        text = rules.render(template, org, link=LINK, code="482913")
        assert rules.is_template_text(text, org), template
    notice = rules.render(Template.NOTICE, org, link=LINK)
    assert notice == f"You have a secure message from {org}: {LINK}"
    assert not rules.is_template_text(notice + " Your biopsy is ready", org)
    assert not rules.is_template_text(f"You have a secure message from {org}: biopsy results", org)
    assert not rules.is_template_text(f"You have a secure message from Dr Who re HIV: {LINK}", org)


def test_organisation_names_are_one_bounded_line() -> None:
    assert rules.organization("Riverside\nClinic\x00" + "x" * 80) == ("Riverside Clinic " + "x" * 80)[:40]


@pytest.mark.parametrize(
    ("body", "keyword", "purposes"),
    [
        ("STOP", Keyword.STOP, tuple(Purpose)),
        ("stop.", Keyword.STOP, tuple(Purpose)),
        ("Stop reminders", Keyword.STOP, (Purpose.REMINDER,)),
        ("UNSUBSCRIBE codes", Keyword.STOP, (Purpose.CODE,)),
        ("start", Keyword.START, tuple(Purpose)),
        ("HELP", Keyword.HELP, ()),
        ("what is this?", Keyword.OTHER, ()),
        ("", Keyword.OTHER, ()),
    ],
)
def test_keywords(body: str, keyword: Keyword, purposes: tuple[Purpose, ...]) -> None:
    got = rules.classify(body)
    assert (got.keyword, got.purposes) == (keyword, purposes)


def test_quiet_hours_follow_the_contacts_zone_and_spare_codes() -> None:
    late = datetime(2026, 12, 5, 6, 30, tzinfo=UTC)  # 22:30 in Los Angeles, 07:30 in Berlin
    assert rules.next_allowed(late, "America/Los_Angeles", Purpose.NOTICE) == datetime(
        2026, 12, 5, 16, 0, tzinfo=UTC
    )
    assert rules.next_allowed(late, "Europe/Berlin", Purpose.NOTICE) == datetime(
        2026, 12, 5, 7, 0, tzinfo=UTC
    )
    assert rules.next_allowed(late, "America/Los_Angeles", Purpose.CODE) == late
    noon = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
    assert rules.next_allowed(noon, "America/Los_Angeles", Purpose.REMINDER) == noon


# -- the SMPP codec, against bytes built from the specification's field tables ---------------------
def test_bind_transceiver_body_is_the_spec_layout() -> None:
    body = pdu.bind_transceiver("esme", "pw")
    assert body == b"esme\x00" + b"pw\x00" + b"\x00" + b"\x34\x00\x00" + b"\x00"
    frame = pdu.encode(pdu.Pdu(pdu.Command.BIND_TRANSCEIVER, 0, 7, body))
    assert frame[:16] == struct.pack(">IIII", 16 + len(body), 0x00000009, 0, 7)
    assert pdu.decode(frame) == pdu.Pdu(pdu.Command.BIND_TRANSCEIVER, 0, 7, body)


def test_submit_sm_round_trips_and_uses_ucs2_beyond_ascii() -> None:
    m = pdu.ShortMessage("+14155550100", "+4930123456", "Zoë's clinic", registered_delivery=1)
    [body] = pdu.short_messages(m)
    # service_type "", TON 1 / NPI 1, the number without "+", then the destination likewise.
    assert body.startswith(b"\x00\x01\x0114155550100\x00\x01\x014930123456\x00")
    back = pdu.parse_short_message(body)
    assert (back.source, back.destination, back.text, back.registered_delivery) == (
        "+14155550100", "+4930123456", "Zoë's clinic", 1,
    )  # fmt: skip
    assert body[body.index(b"\x01\x00", 30) + 2] == pdu.DC_UCS2


def test_long_text_goes_as_udh_segments_that_parse_back_without_the_header() -> None:
    m = pdu.ShortMessage("+14155550100", "+14155550123", "x" * 300, registered_delivery=1)
    bodies = pdu.short_messages(m, reference=7)
    parsed = [pdu.parse_short_message(b) for b in bodies]
    assert "".join(p.text for p in parsed) == "x" * 300
    assert [p.esm_class & pdu.ESM_UDHI for p in parsed] == [pdu.ESM_UDHI] * 2
    assert [p.registered_delivery for p in parsed] == [0, 1]


def test_receipts_parse_from_tlvs_or_appendix_b_text() -> None:
    text = (
        "id:abc123 sub:001 dlvrd:000 submit date:2612040300 done date:2612040301 stat:UNDELIV err:034 text:hi"
    )
    receipt = pdu.parse_receipt(pdu.ShortMessage("+1", "+2", text, esm_class=0x04))
    assert receipt == pdu.Receipt("abc123", "UNDELIV", "034")
    tlvs = {pdu.Tag.RECEIPTED_MESSAGE_ID: b"zz9\x00", pdu.Tag.MESSAGE_STATE: b"\x02"}
    assert pdu.parse_receipt(pdu.ShortMessage("+1", "+2", "", esm_class=0x04, tlvs=tlvs)) == pdu.Receipt(
        "zz9", "DELIVRD"
    )


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">IIII", 8, 0x15, 0, 1),  # shorter than a header
        struct.pack(">IIII", 1_000_000, 0x15, 0, 1),  # beyond MAX_PDU
        struct.pack(">IIII", 16, 0x12345, 0, 1),  # unknown command
    ],
)
def test_hostile_frames_are_pdu_errors(frame: bytes) -> None:
    with pytest.raises(pdu.PduError):
        pdu.decode(frame)


def test_a_string_without_its_nul_is_refused() -> None:
    with pytest.raises(pdu.PduError):
        pdu.parse_short_message(b"\x00\x01\x01" + b"1" * 40)
