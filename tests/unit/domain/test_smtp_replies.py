"""The SMTP reply catalogue: every constant is well-formed and self-consistent.

Modelled on aiosmtpd's ``testing/statuscodes.py`` check that an enhanced status code's
class digit agrees with its reply code's first digit (RFC 3463 §3.1).
"""

from __future__ import annotations

import re

import pytest

from sealmail.domain import smtp_replies
from sealmail.domain.smtp_replies import Reply, catalogue

CATALOGUE = catalogue()
ENHANCED_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def test_catalogue_lists_every_reply_constant_in_the_module() -> None:
    constants = {name for name, value in vars(smtp_replies).items() if isinstance(value, Reply)}
    assert set(CATALOGUE) == constants
    assert len(CATALOGUE) >= 30


@pytest.mark.parametrize(
    "name",
    [
        "S250_OK",
        "S221_BYE",
        "S354_START_MAIL_INPUT",
        "S421_SHUTTING_DOWN",
        "S451_LOCAL_ERROR",
        "S452_TOO_MANY_RECIPIENTS",
        "S454_TLS_UNAVAILABLE",
        "S501_SYNTAX",
        "S503_BAD_SEQUENCE",
        "S530_MUST_STARTTLS",
        "S535_AUTH_FAILED",
        "S538_ENCRYPTION_REQUIRED_FOR_AUTH",
        "S550_RELAY_DENIED",
        "S550_SENDER_NOT_AUTHORIZED",
        "S552_TOO_BIG",
        "S553_BAD_ADDRESS",
        "S554_TLS_REQUIRED",
        "S554_TRANSACTION_FAILED",
    ],
)
def test_catalogue_has_the_replies_adapters_rely_on(name: str) -> None:
    assert name in CATALOGUE


@pytest.mark.parametrize(("name", "reply"), sorted(CATALOGUE.items()))
def test_constant_name_carries_its_reply_code(name: str, reply: Reply) -> None:
    assert name[1:4] == str(reply.code)


@pytest.mark.parametrize(("name", "reply"), sorted(CATALOGUE.items()))
def test_enhanced_code_class_agrees_with_reply_code(name: str, reply: Reply) -> None:
    first_digit = reply.code // 100
    if first_digit == 3:
        # RFC 3463 defines classes 2, 4 and 5 only; intermediate replies carry none.
        assert reply.enhanced == "", name
    else:
        assert ENHANCED_RE.match(reply.enhanced), name
        assert int(reply.enhanced[0]) == first_digit, name


@pytest.mark.parametrize(("name", "reply"), sorted(CATALOGUE.items()))
def test_reply_text_is_one_nonempty_line(name: str, reply: Reply) -> None:
    assert reply.text.strip() == reply.text != "", name
    assert not any(ch in reply.text for ch in "\r\n\0"), name
    assert 200 <= reply.code <= 599, name
    # RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including CRLF.
    assert len(str(reply).encode()) <= 510, name


@pytest.mark.parametrize(
    ("reply", "line"),
    [
        (smtp_replies.S550_RELAY_DENIED, "550 5.7.1 Relaying denied"),
        (smtp_replies.S530_MUST_STARTTLS, "530 5.7.0 Must issue a STARTTLS command first"),
        (
            smtp_replies.S552_TOO_BIG,
            "552 5.3.4 Message size exceeds fixed maximum message size",
        ),
        (smtp_replies.S250_OK, "250 2.0.0 OK"),
        (smtp_replies.S354_START_MAIL_INPUT, "354 End data with <CR><LF>.<CR><LF>"),
    ],
)
def test_str_renders_the_wire_line(reply: Reply, line: str) -> None:
    assert str(reply) == line


def test_replies_are_immutable_values() -> None:
    reply = smtp_replies.S250_OK
    with pytest.raises(AttributeError):
        reply.code = 550  # type: ignore[misc]  # the point: frozen dataclass
    assert Reply(250, "2.0.0", "OK") == reply


def test_with_text_keeps_the_codes_and_changes_the_wording() -> None:
    queued = smtp_replies.S250_QUEUED.with_text("Queued as 01HZX")
    assert str(queued) == "250 2.0.0 Queued as 01HZX"
    assert str(smtp_replies.S250_QUEUED) == "250 2.0.0 Message accepted for delivery"


@pytest.mark.parametrize("text", ["ok\r\n250 forged", "ok\nmore", "nul\0"])
def test_with_text_refuses_reply_line_injection(text: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        smtp_replies.S250_OK.with_text(text)


def test_transient_and_permanent_follow_the_reply_class() -> None:
    assert smtp_replies.S451_LOCAL_ERROR.is_transient
    assert not smtp_replies.S451_LOCAL_ERROR.is_permanent
    assert smtp_replies.S554_TLS_REQUIRED.is_permanent
    assert not smtp_replies.S250_OK.is_transient
    assert not smtp_replies.S250_OK.is_permanent
