"""Address and custom-header validation at intake."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.domain.addresses import (
    PROTECTED_HEADERS,
    Address,
    InvalidAddress,
    InvalidHeader,
    _parse_address,
    _plain,
    parse_address,
    parse_address_list,
    redact_address,
    validate_header,
)

# --- accepted addresses -------------------------------------------------------------


def test_bare_address_is_parsed_and_domain_lower_cased() -> None:
    address = parse_address("Lee.Ann@Clinic.Example", "from")
    assert address == Address(
        display_name=None,
        local_part="Lee.Ann",
        domain="clinic.example",
        ascii_domain="clinic.example",
        addr_spec="Lee.Ann@clinic.example",
        needs_smtputf8=False,
    )


@pytest.mark.parametrize(
    ("value", "display_name", "addr_spec"),
    [
        ("Dr. Lee <lee@clinic.example>", "Dr. Lee", "lee@clinic.example"),
        ('"Lee, Ann" <lee@clinic.example>', "Lee, Ann", "lee@clinic.example"),
        ('"A <b> c" <lee@clinic.example>', "A <b> c", "lee@clinic.example"),
        ('"Say \\"hi\\"" <lee@clinic.example>', 'Say "hi"', "lee@clinic.example"),
        ("<lee@clinic.example>", None, "lee@clinic.example"),
        ("  Lee   <lee@clinic.example>  ", "Lee", "lee@clinic.example"),
        ("Zoë Müller <zoe@clinic.example>", "Zoë Müller", "zoe@clinic.example"),
        ("Lee < lee@clinic.example >", "Lee", "lee@clinic.example"),
    ],
)
def test_display_names_are_split_from_the_address(
    value: str, display_name: str | None, addr_spec: str
) -> None:
    address = parse_address(value, "to")
    assert address.display_name == display_name
    assert address.addr_spec == addr_spec


def test_idn_domain_gets_its_a_label_form() -> None:
    address = parse_address("user@bücher.example", "to")
    assert address.domain == "bücher.example"
    assert address.ascii_domain == "xn--bcher-kva.example"
    assert address.addr_spec == "user@bücher.example"
    assert address.smtp_addr_spec == "user@xn--bcher-kva.example"
    # An IDN domain alone can travel as A-labels, so no SMTPUTF8 is needed.
    assert address.needs_smtputf8 is False


def test_a_label_domain_is_shown_in_unicode() -> None:
    address = parse_address("user@xn--bcher-kva.example", "to")
    assert address.domain == "bücher.example"
    assert address.ascii_domain == "xn--bcher-kva.example"


def test_uts46_maps_upper_case_unicode_and_keeps_eszett() -> None:
    address = parse_address("a@Faß.DE", "to")
    assert address.domain == "faß.de"
    # Non-transitional processing: ß is not folded to "ss" (IDNA2008).
    assert address.ascii_domain == "xn--fa-hia.de"


def test_utf8_local_part_is_flagged_for_smtputf8() -> None:
    address = parse_address("jörg@bücher.example", "to")
    assert address.local_part == "jörg"
    assert address.needs_smtputf8 is True
    assert address.smtp_addr_spec == "jörg@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("value", "local_part", "addr_spec"),
    [
        ('"john doe"@clinic.example', "john doe", '"john doe"@clinic.example'),
        ('"a@b"@clinic.example', "a@b", '"a@b"@clinic.example'),
        ('"a\\"b"@clinic.example', 'a"b', '"a\\"b"@clinic.example'),
        # Quotes that are not needed are dropped in the normalised form.
        ('"john"@clinic.example', "john", "john@clinic.example"),
        ('Doe <"john doe"@clinic.example>', "john doe", '"john doe"@clinic.example'),
    ],
)
def test_quoted_local_parts_are_accepted(value: str, local_part: str, addr_spec: str) -> None:
    address = parse_address(value, "to")
    assert address.local_part == local_part
    assert address.addr_spec == addr_spec


def test_local_part_case_is_preserved() -> None:
    # RFC 5321 §2.4: local parts are case-sensitive.
    assert parse_address("MiXeD@clinic.example", "to").local_part == "MiXeD"


def test_local_part_of_exactly_64_octets_is_accepted() -> None:
    assert parse_address("a" * 64 + "@clinic.example", "to").local_part == "a" * 64


def test_addresses_are_frozen() -> None:
    address = parse_address("a@clinic.example", "to")
    with pytest.raises(AttributeError):
        address.domain = "evil.example"  # type: ignore[misc]  # the point: frozen


# --- refused addresses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("lee.clinic.example", "missing the @ sign"),
        ("Lee <lee.clinic.example>", "missing the @ sign"),
        ("@clinic.example", "nothing before the @ sign"),
        ("lee@", "nothing after the @ sign"),
        ("a" * 65 + "@clinic.example", "local part longer than 64 octets"),
        # 33 two-octet characters: 33 characters but 66 octets.
        ("é" * 33 + "@clinic.example", "local part longer than 64 octets"),
        ("a@" + ".".join(["b" * 63] * 4) + ".example", "domain longer than 255 octets"),
        ("a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example", "longer than 254 octets"),
        ("lee@clinic.example\r\nBcc: attacker@evil.example", "CR or LF"),
        ("lee@clinic.example\nBcc: attacker@evil.example", "CR or LF"),
        ("Lee\r <lee@clinic.example>", "CR or LF"),
        ("lee@clinic.example\0", "NUL"),
        ("lee@clinic\x07.example", "control characters"),
        ("Lee <lee@clinic.example", "unbalanced"),
        ("Lee lee@clinic.example>", "unbalanced"),
        ("<a@x.example> <b@x.example>", "unbalanced"),
        ("Lee <lee@clinic.example> trailing", "unbalanced"),
        ("lee@[192.0.2.1]", "bracketed IP address"),
        ("lee@localhost", "should have a period"),
        ("lee@clinic..example", "period"),
        ("lee..ann@clinic.example", "two periods"),
        ("lee ann@clinic.example", "invalid characters"),
        ("lee@clinic_x.example", "invalid characters"),
        ("lee@xn--zz.example", "IDNA"),
        ("a@b@clinic.example", "invalid characters"),
    ],
)
def test_bad_addresses_are_refused_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        parse_address(value, "to")
    assert reason in caught.value.reason
    assert caught.value.field == "to"


def test_invalid_address_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^from: is missing the @ sign$"):
        parse_address("nobody", "from")


def test_invalid_address_carries_a_redacted_value_only() -> None:
    with pytest.raises(InvalidAddress) as caught:
        parse_address("jane.roe.secret@patient..example", "to[0]")
    error = caught.value
    assert "jane.roe.secret" not in error.value_redacted
    assert "jane.roe.secret" not in str(error)
    assert error.value_redacted == "j***@patient..example"


@pytest.mark.parametrize(
    ("value", "redacted"),
    [
        ("jane@patient.example", "j***@patient.example"),
        ("Jane Roe <jane@patient.example>", "j***@patient.example"),
        ('"jane doe"@patient.example', "j***@patient.example"),
        ("@patient.example", "?***@patient.example"),
        ("no-at-sign", "<10 characters>"),
        ("x@evil.example\r\nforged: log", "x***@evil.example??forged: log"),
    ],
)
def test_redaction_keeps_only_the_first_character_and_domain(value: str, redacted: str) -> None:
    assert redact_address(value) == redacted


# --- lists --------------------------------------------------------------------------


def test_address_list_is_parsed_in_order() -> None:
    addresses = parse_address_list(["a@x.example", "B <b@y.example>"], "to")
    assert [a.addr_spec for a in addresses] == ["a@x.example", "b@y.example"]


def test_address_list_reports_the_index_of_the_bad_entry() -> None:
    values = ["a@x.example", "b@x.example", "c@x.example", "not-an-address"]
    with pytest.raises(InvalidAddress) as caught:
        parse_address_list(values, "to")
    assert caught.value.field == "to[3]"


def test_empty_address_list_is_empty() -> None:
    assert parse_address_list([], "cc") == []


def test_address_list_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError, match="list of addresses"):
        parse_address_list("a@x.example", "to")


# --- custom headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Campaign", "spring-2026"),
        ("In-Reply-To", "<abc@clinic.example>"),
        ("References", "<a@x.example> <b@x.example>"),
        ("X-Priority", ""),
        ("X-Note", "tab\tseparated"),
        ("X-Unicode", "Grüße"),
        ("X-Max", "v" * 998),
        ("X-" + "N" * 74, "name of exactly 76 characters"),
        ("Auto-Submitted", "auto-generated"),
    ],
)
def test_ordinary_custom_headers_are_accepted(name: str, value: str) -> None:
    validate_header(name, value)


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "to",
        "CC",
        "Bcc",
        "Sender",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "message-id",
        "Return-Path",
        "Received",
        "DKIM-Signature",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Authentication-Results",
        "ARC-Seal",
        "arc-message-signature",
        "ARC-Authentication-Results",
        "X-Sealmail-Tenant",
        "x-sealmail-anything",
        "TLS-Required",
        "Resent-From",
    ],
)
def test_protected_headers_cannot_be_overridden(name: str) -> None:
    with pytest.raises(InvalidHeader) as caught:
        validate_header(name, "value")
    assert caught.value.field == f"headers.{name}"
    assert "cannot be overridden" in caught.value.reason


def test_protected_set_covers_the_documented_names() -> None:
    for name in ("from", "to", "cc", "bcc", "subject", "dkim-signature", "tls-required"):
        assert name in PROTECTED_HEADERS


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("X Campaign", "printable ASCII"),
        ("X-Campaign:", "printable ASCII"),
        ("X-Cämpaign", "printable ASCII"),
        ("X-A\r\nBcc", "printable ASCII"),
        ("X-Tab\t", "printable ASCII"),
        ("X-" + "N" * 75, "longer than 76"),
    ],
)
def test_bad_header_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(InvalidHeader) as caught:
        validate_header(name, "value")
    assert reason in caught.value.reason


def test_unsafe_header_name_is_shown_escaped_in_the_field() -> None:
    with pytest.raises(InvalidHeader) as caught:
        validate_header("X-A\r\nBcc", "x")
    assert caught.value.field == "headers['X-A\\r\\nBcc']"
    assert "\r" not in caught.value.field
    assert "\n" not in caught.value.field


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ok\r\nBcc: attacker@evil.example", "CR or LF"),
        ("ok\rmore", "CR or LF"),
        ("ok\nmore", "CR or LF"),
        ("ok\0", "NUL"),
        ("bell\x07", "control characters"),
        ("del\x7f", "control characters"),
        ("v" * 999, "longer than 998 octets"),
        ("é" * 500, "longer than 998 octets"),
    ],
)
def test_bad_header_values_are_refused(value: str, reason: str) -> None:
    with pytest.raises(InvalidHeader) as caught:
        validate_header("X-Campaign", value)
    assert reason in caught.value.reason
    assert caught.value.field == "headers.X-Campaign"


def test_header_field_prefix_can_be_chosen_by_the_caller() -> None:
    with pytest.raises(InvalidHeader) as caught:
        validate_header("Subject", "x", field="message.headers")
    assert caught.value.field == "message.headers.Subject"
    assert isinstance(caught.value, ValueError)


def test_a_valid_address_is_parsed_once_and_a_refusal_is_raised_every_time() -> None:
    """``parse_address`` keeps recent valid results (issue 18: every MAIL FROM asked it)."""
    from sealmail.domain.addresses import InvalidAddress, parse_address

    first = parse_address("<sender-cache@clinic.example>", "mail_from")
    assert parse_address("<sender-cache@clinic.example>", "mail_from") is first
    assert parse_address.cache_info().hits >= 1
    for _ in range(2):
        with pytest.raises(InvalidAddress):
            parse_address("<no-at-sign.example>", "rcpt_to")


_LOCAL_CHARS = "abcXYZ019.+-_=!#$%&'*/?^`{|}~\"é "
_DOMAIN_CHARS = "abcz019-.XÉ"


def _outcome(value: str, *, shortcut: bool) -> Address | str:
    try:
        return _parse_address(value, "to", shortcut=shortcut)
    except InvalidAddress as exc:
        return f"refused: {exc.reason}"


@settings(max_examples=600, deadline=None)
@given(
    local=st.one_of(
        st.from_regex(r"[a-z0-9.+_-]{1,20}", fullmatch=True), st.text(_LOCAL_CHARS, min_size=1, max_size=70)
    ),
    labels=st.lists(
        st.one_of(
            st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
            st.sampled_from(["xn--bcher-kva", "ab--c", "a" * 63, "a" * 64, "localhost", "test"]),
            st.text(_DOMAIN_CHARS, min_size=1, max_size=66),
        ),
        min_size=1,
        max_size=4,
    ),
    top=st.sampled_from(
        ["net", "example", "com", "org", "c", "test", "localhost", "onion", "x1", "Net", "xn--p1ai"]
    ),
    name=st.sampled_from(["", "Ann <", '"Lee, A" <']),
)
def test_the_plain_address_shortcut_answers_exactly_as_email_validator_and_idna_do(
    local: str, labels: list[str], top: str, name: str
) -> None:
    addr = f"{local}@{'.'.join([*labels, top])}"
    value = f"{name}{addr}>" if name else addr
    assert _outcome(value, shortcut=True) == _outcome(value, shortcut=False)


@pytest.mark.parametrize(
    "value",
    ["ann@example.net", "a.b+c@mail.example.co.uk", "x@a-b.example", "Ann <o'neil@clinic.example>"],
)
def test_plain_addresses_take_the_shortcut_and_match_the_full_path(value: str) -> None:
    assert _plain(*_split(value)) and _outcome(value, shortcut=True) == _outcome(value, shortcut=False)


def _split(value: str) -> tuple[str, str]:
    addr = value.rsplit("<", 1)[-1].rstrip(">")
    return addr, addr.rpartition("@")[2]


@pytest.mark.parametrize(
    "value",
    [
        "\udcff\udcfe@clinic.example",
        "pat\udcc3ient@example.org",
        "a@exam\udcffple.org",
        "Dr \udcff <a@b.example>",
    ],
)
def test_lone_surrogates_are_invalid_utf8_not_an_encoding_crash(value: str) -> None:
    # What an SMTP argument's invalid UTF-8 becomes once decoded with surrogateescape.
    with pytest.raises(InvalidAddress, match="is not valid UTF-8"):
        parse_address(value, "rcpt_to")
