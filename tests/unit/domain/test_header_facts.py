"""``header_facts`` reads only the header block (issue 18: the body was parsed for nothing)."""

from __future__ import annotations

import email
import email.policy
import email.utils

import pytest

from sealmail.domain.message import complete_raw, header_block, header_facts

BODY = b"Dear patient,\r\n\r\nFrom: not-a-header@elsewhere.example\r\n" * 50


@pytest.mark.parametrize(
    ("raw", "block"),
    [
        (b"From: a@b.example\r\nSubject: x\r\n\r\n" + BODY, b"From: a@b.example\r\nSubject: x\r\n\r\n"),
        (b"From: a@b.example\nX: y\n\nbody\n\nmore", b"From: a@b.example\nX: y\n\n"),
        (b"From: a@b.example\n\r\nbody", b"From: a@b.example\n\r\n"),
        (b"From: a@b.example\r\nSubject: no body", b"From: a@b.example\r\nSubject: no body"),
        (b"\r\nFrom: a@b.example\r\n\r\nbody", b"\r\nFrom: a@b.example\r\n\r\n"),
    ],
)
def test_the_block_ends_at_the_first_empty_line(raw: bytes, block: bytes) -> None:
    assert header_block(raw) == block


@pytest.mark.parametrize(
    "raw",
    [
        b"From: Clinic <a@b.example>\r\nSender: s@c.example\r\nMessage-ID: <1@b>\r\nDate: x\r\n\r\n" + BODY,
        b"\r\nFrom: a@b.example\r\n\r\n" + BODY,  # an empty first line: no header at all
        b"From: a@b.example\r\nnot a header line\r\nSender: s@c.example\r\n\r\n" + BODY,
        b"From: a@b.example,\r\n c@d.example\r\nSubject: folded\r\n\r\n" + BODY,
        b"Subject: x\r\n\r\nFrom: body@e.example\r\n",  # a From in the body is not a header
    ],
)
def test_facts_are_what_the_whole_message_parse_gives(raw: bytes) -> None:
    whole = email.message_from_bytes(raw, policy=email.policy.compat32)
    facts = header_facts(raw)
    froms = [a for _, a in email.utils.getaddresses([str(v) for v in whole.get_all("From") or []])]
    assert facts.header_from == (froms[0] if froms else "")
    assert facts.has_date == (whole.get("Date") is not None)
    senders = email.utils.getaddresses(
        [str(v) for v in (whole.get_all("From") or []) + (whole.get_all("Sender") or [])]
    )
    assert facts.senders == tuple(a for _, a in senders)


def test_complete_raw_reuses_the_callers_facts() -> None:
    raw = b"From: a@b.example\r\n\r\nbody\r\n"
    completed, message_id = complete_raw(raw, "mail.example", header_facts(raw))
    assert completed.startswith(b"Message-ID: " + message_id.encode() + b"\r\nDate: ")
    assert completed.endswith(raw)
    assert header_facts(completed).message_id == message_id


@pytest.mark.parametrize(
    ("from_", "sender"),
    [
        ("Clinic <a@b.example>", None),
        ("a@b.example, Second <c@d.example>", "Office <e@f.example>"),
        ('"Doe, Jane" <jane@b.example>', None),
        ("(comment) a@b.example (more", "x"),
        ("Long <" + "x" * 1200 + "@b.example>", "s@b.example"),
    ],
)
def test_remembered_mailboxes_are_what_the_parser_answers(from_: str, sender: str | None) -> None:
    raw = f"From: {from_}\r\n".encode() + (f"Sender: {sender}\r\n".encode() if sender else b"") + b"\r\nbody"
    values = [from_] + ([sender] if sender else [])
    for _ in range(2):  # the second call answers from memory
        facts = header_facts(raw)
        first = email.utils.getaddresses([from_])
        assert facts.header_from == (first[0][1] if first else "")
        assert facts.senders == tuple(addr for _, addr in email.utils.getaddresses(values))
