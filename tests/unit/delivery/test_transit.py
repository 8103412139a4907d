"""What delivery makes of RFC 8689 on a queued message: REQUIRETLS kept, TLS-Required: No weighed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sealmail.delivery.policy import transit_for, without_tls_required
from sealmail.domain.secureline import DlpAction, DlpFacts
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.messages.queue import QueuedMessage

MSG = QueuedMessage(
    "msg_1", "ten_1", "transactional", "a@b.example", None, datetime.now(UTC), None, "k", b"w", b"", {}
)


def test_requiretls_is_always_kept() -> None:
    transit = transit_for(replace(MSG, tls_required="requiretls"), TlsPolicy.OPPORTUNISTIC, DlpFacts(True))
    assert transit.requiretls and not transit.relaxed


def test_tls_required_no_is_weighed() -> None:
    relaxed = replace(MSG, tls_required="no")
    assert transit_for(relaxed, TlsPolicy.OPPORTUNISTIC, DlpFacts()).relaxed
    phi = transit_for(relaxed, TlsPolicy.OPPORTUNISTIC, DlpFacts(True, DlpAction.REQUIRE_ENCRYPTION, "ssn"))
    assert not phi.relaxed and phi.note == "TLS-Required: No not honoured: DLP found PHI in the message"
    assert not transit_for(relaxed, TlsPolicy.REQUIRE, DlpFacts()).relaxed
    assert transit_for(MSG, TlsPolicy.OPPORTUNISTIC, DlpFacts()).note == ""


def test_the_field_and_its_folds_are_removed_and_nothing_else() -> None:
    raw = (
        b"From: a@b.example\r\nTLS-Required: No\r\n (a comment fold)\r\nSubject: x\r\n"
        b"tls-required: no\r\n\r\nTLS-Required: No in the body stays\r\n"
    )
    assert without_tls_required(raw) == (
        b"From: a@b.example\r\nSubject: x\r\n\r\nTLS-Required: No in the body stays\r\n"
    )
    plain = b"From: a@b.example\r\n\r\nbody\r\n"
    assert without_tls_required(plain) is plain
