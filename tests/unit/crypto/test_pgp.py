"""Structure of Sealmail's PGP/MIME output (RFC 3156 §4) and certificate parsing errors.

No GnuPG here: keys come from ``generate_tenant_key`` and decryption from pysequoia, so
these run everywhere; tests/integration/crypto/test_pgp_gpg.py checks interop with gpg.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pysequoia
import pytest

from sealmail.crypto import pgp

SECRET_SUBJECT = "HIV test result for Pat"
SECRET_BODY = b"Your viral load is undetectable."

MESSAGE = (
    b"From: Dr Who <dr@clinic.example>\r\n"
    b"To: Pat <pat@example.net>\r\n"
    b"Cc: nurse@clinic.example\r\n"
    b"Bcc: hidden@clinic.example\r\n"
    b"Reply-To: desk@clinic.example\r\n"
    b"Subject: " + SECRET_SUBJECT.encode() + b"\r\n"
    b"Date: Wed, 25 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <abc@clinic.example>\r\n"
    b"X-Sealmail-Tenant: t1\r\n"
    b"List-Unsubscribe: <mailto:u@clinic.example>\r\n"
    b"X-Mailer: Something\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"\r\n" + SECRET_BODY + b"\r\n"
)


@pytest.fixture(scope="module")
def tenant() -> tuple[bytes, bytes]:
    return pgp.generate_tenant_key("Clinic <archive@clinic.example>")


@pytest.fixture(scope="module")
def recipient() -> tuple[bytes, bytes]:
    return pgp.generate_tenant_key("Pat <pat@example.net>")


def _decrypt(outer: bytes, secret: bytes) -> bytes:
    msg = email.message_from_bytes(outer, policy=email.policy.compat32)
    armored = msg.get_payload()[1].get_payload(decode=True)
    plain = pysequoia.decrypt(armored, decryptor=pysequoia.Tsk.from_bytes(secret).decryptor()).bytes
    assert plain is not None
    return plain


def test_output_is_rfc3156_multipart_encrypted(
    tenant: tuple[bytes, bytes], recipient: tuple[bytes, bytes]
) -> None:
    out = pgp.encrypt_pgp_mime(MESSAGE, [recipient[1]], archive_cert=tenant[1])
    msg = email.message_from_bytes(out, policy=email.policy.compat32)

    assert msg.get_content_type() == "multipart/encrypted"
    assert msg.get_param("protocol") == "application/pgp-encrypted"
    control, data = msg.get_payload()
    assert control.get_content_type() == "application/pgp-encrypted"
    assert control.get_payload().strip() == "Version: 1"
    assert data.get_content_type() == "application/octet-stream"
    assert data.get_payload().lstrip().startswith("-----BEGIN PGP MESSAGE-----")
    assert b"\n" not in out.replace(b"\r\n", b"")


def test_outer_headers_keep_routing_and_drop_content_and_bcc(
    tenant: tuple[bytes, bytes], recipient: tuple[bytes, bytes]
) -> None:
    out = pgp.encrypt_pgp_mime(MESSAGE, [recipient[1]], archive_cert=tenant[1])
    msg = email.message_from_bytes(out, policy=email.policy.compat32)

    for name in (
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Date",
        "Message-ID",
        "X-Sealmail-Tenant",
        "List-Unsubscribe",
    ):
        assert msg[name] is not None, name
    assert msg["Subject"] == "[...]"
    assert msg["Bcc"] is None
    assert msg["X-Mailer"] is None
    assert msg["Content-Transfer-Encoding"] is None
    assert len(msg.get_all("Content-Type")) == 1


def test_no_plaintext_subject_or_body_leaks_outside(
    tenant: tuple[bytes, bytes], recipient: tuple[bytes, bytes]
) -> None:
    out = pgp.encrypt_pgp_mime(MESSAGE, [recipient[1]], archive_cert=tenant[1])

    assert SECRET_SUBJECT.encode() not in out
    assert SECRET_BODY not in out
    assert b"hidden@clinic.example" not in out


def test_inner_part_carries_protected_headers_and_the_original_body(
    tenant: tuple[bytes, bytes], recipient: tuple[bytes, bytes]
) -> None:
    out = pgp.encrypt_pgp_mime(MESSAGE, [recipient[1]], archive_cert=tenant[1])

    for secret in (recipient[0], tenant[0]):
        inner = email.message_from_bytes(_decrypt(out, secret), policy=email.policy.compat32)
        assert inner["Subject"] == SECRET_SUBJECT
        assert inner["Message-ID"] == "<abc@clinic.example>"
        assert inner.get_param("protected-headers") == "v1"
        assert inner.get_content_type() == "text/plain"
        assert inner["Bcc"] is None
        assert inner.get_payload(decode=True) == SECRET_BODY + b"\r\n"


def test_subject_stays_outside_when_protection_is_off(tenant: tuple[bytes, bytes]) -> None:
    out = pgp.encrypt_pgp_mime(MESSAGE, [], archive_cert=tenant[1], protect_subject=False)

    assert email.message_from_bytes(out, policy=email.policy.compat32)["Subject"] == SECRET_SUBJECT


def test_signed_message_verifies_with_the_tenant_certificate(
    tenant: tuple[bytes, bytes], recipient: tuple[bytes, bytes]
) -> None:
    out = pgp.encrypt_pgp_mime(MESSAGE, [recipient[1]], archive_cert=tenant[1], signer_secret=tenant[0])
    msg = email.message_from_bytes(out, policy=email.policy.compat32)
    armored = msg.get_payload()[1].get_payload(decode=True)
    tenant_cert = pysequoia.Cert.from_bytes(tenant[1])

    result = pysequoia.decrypt(
        armored,
        decryptor=pysequoia.Tsk.from_bytes(recipient[0]).decryptor(),
        store=lambda _ids: [tenant_cert],
    )

    assert len(result.valid_sigs) == 1


def test_no_certificates_at_all_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        pgp.encrypt_pgp_mime(MESSAGE, [], archive_cert=None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty certificate"),
        (b"not a key at all", "not a valid OpenPGP certificate"),
    ],
)
def test_unparseable_certificates_raise_certificate_error(data: bytes, message: str) -> None:
    with pytest.raises(pgp.CertificateError, match=message):
        pgp.inspect_cert(data, datetime.now(UTC))


def test_secret_key_is_refused_where_a_certificate_is_expected(tenant: tuple[bytes, bytes]) -> None:
    with pytest.raises(pgp.CertificateError, match="secret key") as excinfo:
        pgp.inspect_cert(tenant[0], datetime.now(UTC))
    assert "PRIVATE" not in str(excinfo.value)


def test_keyring_with_two_certificates_is_refused(
    tenant: tuple[bytes, bytes], recipient: tuple[bytes, bytes]
) -> None:
    with pytest.raises(pgp.CertificateError, match="exactly one"):
        pgp.inspect_cert(tenant[1] + recipient[1], datetime.now(UTC))


def test_loaded_cert_is_reusable_and_reports_facts(recipient: tuple[bytes, bytes]) -> None:
    loaded = pgp.load_cert(recipient[1])

    assert loaded.info.emails == ("pat@example.net",)
    assert loaded.info.version == 4
    assert loaded.info.can_encrypt
    assert loaded.info.supports_seipd_v2
    assert "PUBLIC KEY" not in repr(loaded)
