"""Both intakes refuse the same malformed messages permanently, naming the same rule.

The SMTP gateway (real listener on loopback) and ``POST /v1/messages/raw`` (uvicorn on
loopback) share ``domain/intake_limits.validate_raw``: a violation is a 5yz reply (never
451) and a 422 problem+json with ``rule`` (never 500), and nothing is stored.
"""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.conftest import TenantFixture
from tests.integration.client.server import ApiServer
from tests.integration.intake.test_smtp_gateway import EXTERNAL, SENDER, authenticated, message, stored_ids

from sealmail.app import Services
from sealmail.intake.smtp import SmtpGateway

HEAD = (
    f"From: Dr. Lee <{SENDER}>\r\nTo: {EXTERNAL}\r\nSubject: Results\r\n"
    "Date: Tue, 01 Apr 2025 09:00:00 +0000\r\nMessage-ID: <limits@clinic.example>\r\n"
).encode()


def nested_mime(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    for level in range(depth, 0, -1):
        boundary = f"b{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="'
            + boundary
            + b'"\r\n\r\n--'
            + boundary
            + b"\r\n"
            + body
            + b"--"
            + boundary
            + b"--\r\n"
        )
    return HEAD + b"MIME-Version: 1.0\r\n" + body


def with_headers(extra: bytes) -> bytes:
    return HEAD + extra + b"\r\nbody\r\n"


def rfc2231_chain(depth: int) -> bytes:
    """``nested_mime`` with each boundary given as an RFC 2231 continuation (``boundary*0=``),
    which the email package reads and the check once did not."""
    return nested_mime(depth).replace(b'boundary="', b'boundary*0="')


def semicolon_filename() -> bytes:
    """A part whose Content-Disposition is 60 KB of quoted semicolons (seconds of the email
    package's parameter parsing, at every read of the file name)."""
    value = b'attachment; filename="' + b"\r\n ".join([b";" * 900] * 66) + b'"'
    return (
        HEAD
        + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        + b"Content-Type: application/octet-stream\r\nContent-Disposition: "
        + value
        + b"\r\n\r\nxx\r\n--b--\r\n"
    )


# (raw message, rule, SMTP code, enhanced code)
CASES: dict[str, Callable[[], tuple[bytes, str, int, str]]] = {
    "mime_200_deep": lambda: (nested_mime(200), "mime_too_deep", 554, "5.6.0"),
    "mime_1000_deep": lambda: (nested_mime(1000), "mime_too_deep", 554, "5.6.0"),
    "mime_300_deep_rfc2231_boundaries": lambda: (rfc2231_chain(300), "mime_too_deep", 554, "5.6.0"),
    "semicolon_parameters_in_a_part": lambda: (semicolon_filename(), "too_many_parameters", 554, "5.6.0"),
    "space_before_colon_hides_a_sender": lambda: (
        with_headers(b"X-Note : hi\r\nSender: ceo@bank.example\r\n"),
        "malformed_header",
        554,
        "5.6.0",
    ),
    "comments_nested_5400_deep_in_to": lambda: (
        HEAD.replace(
            f"To: {EXTERNAL}".encode(), b"To: " + b"\r\n ".join([b"(" * 900] * 6) + EXTERNAL.encode()
        )
        + b"\r\nbody\r\n",
        "malformed_header",
        554,
        "5.6.0",
    ),
    "second_content_type_field": lambda: (
        with_headers(b"Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=x\r\n"),
        "duplicate_header",
        554,
        "5.6.0",
    ),
    "folded_header_of_200k": lambda: (
        with_headers(b"X-Long: start\r\n" + b" " * 1 + (b"x" * 70 + b"\r\n ") * 3000 + b"end\r\n"),
        "header_field_too_long",
        552,
        "5.3.4",
    ),
    "header_section_of_300k": lambda: (
        with_headers(
            b"".join(b"X-F" + str(i).encode() + b": a\r\n" + b" " + b"y" * 900 + b"\r\n" for i in range(330))
        ),
        "header_too_large",
        552,
        "5.3.4",
    ),
    "thousand_header_fields": lambda: (
        with_headers(b"".join(b"X-N" + str(i).encode() + b": v\r\n" for i in range(1000))),
        "too_many_header_fields",
        554,
        "5.6.0",
    ),
    "150_received_fields": lambda: (
        with_headers(b"Received: from a by b; Tue, 1 Apr 2025 09:00:00 +0000\r\n" * 150),
        "routing_loop",
        554,
        "5.4.6",
    ),
    "nul_in_header": lambda: (with_headers(b"X-Tag: a\x00b\r\n"), "nul_octet", 554, "5.6.0"),
    "bare_cr_in_header": lambda: (
        with_headers(b"X-Tag: a\rBcc: hidden@example.org\r\n"),
        "bare_line_ending",
        554,
        "5.6.0",
    ),
    "bare_lf_in_header": lambda: (
        with_headers(b"X-Tag: a\nBcc: hidden@example.org\r\n"),
        "bare_line_ending",
        554,
        "5.6.0",
    ),
    "second_from_field": lambda: (
        with_headers(b"From: ceo@bank.example\r\n"),
        "duplicate_header",
        554,
        "5.6.0",
    ),
    "header_line_of_999": lambda: (
        with_headers(b"X-Wide: " + b"w" * 991 + b"\r\n"),
        "header_line_too_long",
        554,
        "5.6.0",
    ),
}


@pytest.fixture
def api(services: Services) -> Iterator[str]:
    with ApiServer(services) as server:
        yield server.url


def send_data(client: smtplib.SMTP, raw: bytes) -> tuple[int, bytes]:
    """MAIL, RCPT, then DATA with ``raw`` sent byte for byte (smtplib.data would fix bare CR/LF)."""
    assert client.mail(SENDER)[0] == 250
    assert client.rcpt(EXTERNAL)[0] == 250
    client.putcmd("data")
    code, reply = client.getreply()
    assert code == 354, reply
    client.send(raw + b".\r\n")
    return client.getreply()


def post_raw(api: str, tenant: TenantFixture, raw: bytes) -> httpx.Response:
    return httpx.post(
        f"{api}/v1/messages/raw",
        json={
            "envelope": {"mail_from": SENDER, "rcpt_to": [EXTERNAL]},
            "message": base64.b64encode(raw).decode(),
            "stream": "phi",
        },
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        timeout=30,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_intakes_refuse_permanently_with_the_same_rule(
    case: str,
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: TenantFixture,
    api: str,
) -> None:
    raw, rule, code, enhanced = CASES[case]()
    client = authenticated(connect, gateway, credential)

    smtp_code, smtp_reply = send_data(client, raw)
    response = post_raw(api, tenant, raw)

    assert (smtp_code, smtp_reply[: len(enhanced)].decode()) == (code, enhanced), smtp_reply
    assert f"({rule})".encode() in smtp_reply
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/message-refused")
    assert problem["rule"] == rule
    assert stored_ids(services, tenant) == []
    # The connection is still usable: a permanent refusal ends the transaction, not the session.
    assert send_data(client, message())[0] == 250


def test_limits_are_settings(start_gateway: Any, connect: Any, credential: tuple[str, str, str]) -> None:
    gateway = start_gateway(intake_max_received=5)
    client = authenticated(connect, gateway, credential)
    code, reply = send_data(client, with_headers(b"Received: from a by b; x\r\n" * 6))
    assert (code, reply[:5]) == (554, b"5.4.6"), reply


def test_every_from_and_sender_mailbox_must_be_on_a_verified_domain(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: TenantFixture,
    api: str,
) -> None:
    client = authenticated(connect, gateway, credential)
    spoofs = [
        message()
        .replace(f"From: Dr. Lee <{SENDER}>".encode(), f"From: Dr. Lee <{SENDER}>, ceo@bank.example".encode())
        .replace(b"To:", f"Sender: {SENDER}\r\nTo:".encode()),
        message().replace(b"To:", b"Sender: ceo@bank.example\r\nTo:"),
    ]
    for raw in spoofs:
        code, reply = send_data(client, raw)
        assert (code, reply[:5]) == (550, b"5.7.1"), reply
        assert b"bank.example" in reply
        response = post_raw(api, tenant, raw)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "from"
    assert stored_ids(services, tenant) == []


def test_mail_from_on_a_special_use_domain_says_why_it_is_refused(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: TenantFixture,
) -> None:
    # A tenant may register clinic.test, but RFC 6761 names make email_validator refuse it:
    # the reply must say so rather than claim a syntax error in a well-formed address.
    services.tenancy.add_domain(tenant.id, "clinic.test", actor="test", verified=True)
    client = authenticated(connect, gateway, credential)
    code, reply = client.mail("sender@clinic.test")
    assert (code, reply[:5]) == (553, b"5.1.7"), reply
    assert b"special-use or reserved name" in reply
