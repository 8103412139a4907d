"""RFC 9788 header protection, parsed back with the standard library's e-mail parser."""

from __future__ import annotations

import email
import email.policy

from sealmail.crypto import header_protection as hp

FIELDS = [
    b"From: Dr Who <dr@clinic.example>\r\n",
    b"To: Pat <pat@example.net>\r\n",
    b"Bcc: hidden@clinic.example\r\n",
    b"Subject: HIV test result\r\n",
    b"Comments: internal\r\n",
    b"Keywords: oncology\r\n",
    b"X-Sealmail-Tenant: t1\r\n",
    b"MIME-Version: 1.0\r\n",
    b"Content-Type: text/plain;\r\n charset=utf-8\r\n",
]


def _outer() -> list[bytes]:
    return [o for raw in FIELDS if (o := hp.outer_field(raw)) is not None and not raw.startswith(b"Content")]


def test_hcp_baseline_obscures_subject_and_drops_comments_and_keywords() -> None:
    outer = _outer()
    assert b"Subject: [...]" in outer
    assert not any(raw.startswith((b"Comments", b"Keywords")) for raw in outer)
    assert b"From: Dr Who <dr@clinic.example>" in outer


def test_encrypted_payload_parses_with_hp_cipher_legacy_marker_and_hp_outer() -> None:
    head = hp.payload_head([FIELDS[-1]], hp.protected_fields(FIELDS), _outer())
    part = email.message_from_bytes(head + b"\r\nbody\r\n", policy=email.policy.default)

    assert part.get_content_type() == "text/plain"
    assert part["Content-Type"].params == {"charset": "utf-8", "hp": "cipher", "protected-headers": "v1"}
    assert part["Subject"] == "HIV test result"
    assert part["Comments"] == "internal"
    assert part["Bcc"] is None
    assert part["X-Sealmail-Tenant"] is None
    records = [str(v) for v in part.get_all("HP-Outer") or []]
    assert "Subject: [...]" in records
    assert "From: Dr Who <dr@clinic.example>" in records
    # Removed outside, so no record: the reader learns the field was hidden (RFC 9788 §2.2).
    assert not any(r.startswith(("Comments", "Keywords", "X-Sealmail", "MIME-Version")) for r in records)


def test_signed_only_payload_is_marked_clear_without_hp_outer() -> None:
    head = hp.payload_head([], hp.protected_fields(FIELDS), None)
    part = email.message_from_bytes(head + b"\r\nbody\r\n", policy=email.policy.default)

    assert part.get_content_type() == "text/plain"
    assert part["Content-Type"].params["hp"] == "clear"
    assert part.get_all("HP-Outer") is None


def test_existing_hp_parameter_is_not_doubled() -> None:
    marked = hp.mark_content_type(b'Content-Type: text/plain; hp="cipher"', encrypted=True)
    assert marked.count(b"hp=") == 1
    assert marked.endswith(b'protected-headers="v1"')
