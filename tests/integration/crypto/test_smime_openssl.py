"""Sealmail's S/MIME output, checked by an independent implementation: the ``openssl`` CLI.

A throwaway CA (minted here with ``cryptography``; trustme cannot issue e-mail certificates)
issues a recipient certificate with an rfc822Name SAN and keyEncipherment, an archive
certificate and a tenant signing certificate.  Messages come from Sealmail's own builder
(multipart/alternative plus an attachment).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import shutil
import subprocess
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealmail.crypto.smime import (
    TenantIdentity,
    encrypt_smime,
    load_tenant_identity,
    sign_and_encrypt_smime,
    sign_smime,
)
from sealmail.domain.addresses import parse_address
from sealmail.domain.message import Attachment, Draft, build

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed (apt-get install openssl)")

NOW = dt.datetime.now(dt.UTC)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    names = (
        "digital_signature content_commitment key_encipherment data_encipherment key_agreement "
        "key_cert_sign crl_sign encipher_only decipher_only"
    ).split()
    return x509.KeyUsage(**{name: allowed.get(name, False) for name in names})


@dataclass
class Party:
    """A certificate and key, also written to disk for openssl."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path


@dataclass
class Pki:
    ca_path: Path
    recipient: Party
    archive: Party
    signer_rsa: Party
    signer_ec: Party


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("smime-pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sealmail Test S/MIME CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(_pem(ca_cert))

    def issue(name: str, address: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Party:
        usage = (
            _key_usage(digital_signature=True, key_encipherment=True)
            if isinstance(key, rsa.RSAPrivateKey)
            else _key_usage(digital_signature=True, key_agreement=True)
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(hours=1))
            .not_valid_after(NOW + dt.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(_pem(cert))
        key_path.write_bytes(_key_pem(key))
        return Party(cert, key, cert_path, key_path)

    def rsa_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Pki(
        ca_path=ca_path,
        recipient=issue("recipient", "alice@patients.example", rsa_key()),
        archive=issue("archive", "archive@clinic.example", rsa_key()),
        signer_rsa=issue("signer-rsa", "results@clinic.example", rsa_key()),
        signer_ec=issue("signer-ec", "results@clinic.example", ec.generate_private_key(ec.SECP256R1())),
    )


def _identity(party: Party) -> TenantIdentity:
    return load_tenant_identity(_pem(party.cert), _key_pem(party.key))


@pytest.fixture(scope="module")
def message() -> bytes:
    draft = Draft(
        sender=parse_address("Clinic Results <results@clinic.example>", "from"),
        to=(parse_address("alice@patients.example", "to"),),
        subject="Your lab results",
        text="Dear Alice,\n\nyour results are attached.\n" + "Line of text.\n" * 50,
        html="<p>Dear Alice,</p><p>your results are <b>attached</b>.</p>\n",
        attachments=(Attachment("results.pdf", "application/pdf", PDF),),
    )
    return build(draft, "clinic.example").raw


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _body_entity(raw: bytes) -> bytes:
    """The body entity as a reader sees it: Content-* fields, blank line, body (LF ends)."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    head = "".join(
        f"{name}: {value}\n" for name, value in parsed.items() if name.lower().startswith("content-")
    )
    return head.encode() + b"\n" + _lf(raw).split(b"\n\n", 1)[1]


def _openssl(*args: str | Path, input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *map(str, args)], input=input_bytes, capture_output=True, timeout=60, check=False
    )


def _decrypt(path: Path, party: Party, out: Path) -> bytes:
    result = _openssl(
        "cms", "-decrypt", "-in", path, "-recip", party.cert_path, "-inkey", party.key_path, "-out", out
    )
    assert result.returncode == 0, result.stderr.decode()
    return out.read_bytes()


def _parts(entity: bytes) -> dict[str, bytes]:
    parsed = email.message_from_bytes(entity, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    found: dict[str, bytes] = {}
    for part in parsed.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[part.get_content_type()] = _lf(payload)
    return found


def test_openssl_decrypts_to_the_original_body_entity(pki: Pki, message: bytes, tmp_path: Path) -> None:
    encrypted = encrypt_smime(message, [pki.recipient.cert])
    path = tmp_path / "msg.eml"
    path.write_bytes(encrypted)

    info = _openssl("cms", "-cmsout", "-print", "-in", path, "-inform", "SMIME")
    assert info.returncode == 0, info.stderr.decode()
    assert b"aes-256-cbc" in info.stdout
    assert b"Your lab results" in encrypted  # Subject stays outside by default

    decrypted = _decrypt(path, pki.recipient, tmp_path / "out.eml")
    assert _lf(decrypted) == _body_entity(message)
    parts = _parts(decrypted)
    assert parts["application/pdf"] == PDF
    assert b"your results are attached" in parts["text/plain"]
    assert b"<b>attached</b>" in parts["text/html"]


def test_archive_certificate_can_decrypt_too(pki: Pki, message: bytes, tmp_path: Path) -> None:
    path = tmp_path / "msg.eml"
    path.write_bytes(encrypt_smime(message, [pki.recipient.cert], archive_cert=pki.archive.cert))
    for party in (pki.recipient, pki.archive):
        decrypted = _decrypt(path, party, tmp_path / f"out-{party.cert_path.stem}.eml")
        assert _lf(decrypted) == _body_entity(message)


def test_other_key_cannot_decrypt(pki: Pki, message: bytes, tmp_path: Path) -> None:
    path = tmp_path / "msg.eml"
    path.write_bytes(encrypt_smime(message, [pki.recipient.cert]))
    result = _openssl(
        "cms", "-decrypt", "-in", path, "-recip", pki.archive.cert_path,
        "-inkey", pki.archive.key_path, "-out", tmp_path / "out.eml",
    )  # fmt: skip
    assert result.returncode != 0


@pytest.mark.parametrize("signer_name", ["signer_rsa", "signer_ec"])
def test_openssl_verifies_signed_message(pki: Pki, message: bytes, tmp_path: Path, signer_name: str) -> None:
    signer: Party = getattr(pki, signer_name)
    signed = sign_smime(message, signer.cert, signer.key, protect_headers=False)
    path = tmp_path / "signed.eml"
    path.write_bytes(signed)

    result = _openssl("smime", "-verify", "-in", path, "-CAfile", pki.ca_path, "-out", tmp_path / "content")
    assert result.returncode == 0, result.stderr.decode()
    assert b"Verification successful" in result.stderr
    assert _lf((tmp_path / "content").read_bytes()) == _body_entity(message)
    parsed = email.message_from_bytes(signed, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/signed"
    assert parsed.get_param("micalg") == "sha-256"
    assert parsed.get_param("protocol") == "application/pkcs7-signature"
    assert parsed["Subject"] == "Your lab results"


@pytest.mark.parametrize("signer_name", ["signer_rsa", "signer_ec"])
def test_signed_only_header_protection_is_hp_clear_and_verifies_with_openssl_cms(
    pki: Pki, message: bytes, tmp_path: Path, signer_name: str
) -> None:
    """RFC 9788 §2.1 for a signed-only message: the signed part carries the header fields
    under hp="clear" (and the legacy v1 marker), no HP-Outer, and nothing is obscured outside."""
    signer: Party = getattr(pki, signer_name)
    signed = sign_smime(message, signer.cert, signer.key)
    path = tmp_path / "signed.eml"
    path.write_bytes(signed)

    result = _openssl(
        "cms",
        "-verify",
        "-in",
        path,
        "-inform",
        "SMIME",
        "-CAfile",
        pki.ca_path,
        "-out",
        tmp_path / "content",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Verification successful" in result.stderr
    payload_bytes = (tmp_path / "content").read_bytes()
    payload = email.message_from_bytes(payload_bytes, policy=email.policy.default)
    original = email.message_from_bytes(message, policy=email.policy.default)
    assert payload["Content-Type"].params["hp"] == "clear"
    assert payload["Content-Type"].params["protected-headers"] == "v1"
    for name in ("Subject", "From", "To", "Date", "Message-ID"):
        assert payload[name] == original[name], name
    assert payload.get_all("HP-Outer") is None
    assert _lf(payload_bytes).split(b"\n\n", 1)[1] == _lf(message).split(b"\n\n", 1)[1]
    outer = email.message_from_bytes(signed, policy=email.policy.default)
    assert outer["Subject"] == "Your lab results"  # hp="clear": the outside stays readable

    # The copied header fields are covered by the signature: changing one breaks it.
    tampered = tmp_path / "tampered.eml"
    inner_subject = b"\r\nSubject: Your lab results\r\n"
    head, sep, rest = signed.partition(b"\r\n\r\n")
    assert inner_subject in rest
    tampered.write_bytes(head + sep + rest.replace(inner_subject, b"\r\nSubject: Your lab resulTs\r\n", 1))
    result = _openssl("cms", "-verify", "-in", tampered, "-inform", "SMIME", "-CAfile", pki.ca_path)
    assert result.returncode != 0


@pytest.mark.hipaa("164.312(c)(1)")
def test_tampered_signed_message_fails_verification(pki: Pki, message: bytes, tmp_path: Path) -> None:
    signed = sign_smime(message, pki.signer_rsa.cert, pki.signer_rsa.key)
    assert signed.count(b"Line of text.") == 50
    path = tmp_path / "tampered.eml"
    path.write_bytes(signed.replace(b"Line of text.", b"Line of test.", 1))
    result = _openssl("smime", "-verify", "-in", path, "-CAfile", pki.ca_path, "-out", tmp_path / "content")
    assert result.returncode != 0
    assert b"Verification successful" not in result.stderr


def test_signature_from_untrusted_ca_fails_verification(pki: Pki, message: bytes, tmp_path: Path) -> None:
    path = tmp_path / "signed.eml"
    path.write_bytes(sign_smime(message, pki.signer_rsa.cert, pki.signer_rsa.key))
    # The recipient's certificate is no CA: nothing anchors the signer's chain.
    result = _openssl("smime", "-verify", "-in", path, "-CAfile", pki.recipient.cert_path)
    assert result.returncode != 0


def _verify_signed(pki: Pki, tmp_path: Path) -> None:
    """openssl verifies tmp_path/signed.eml and writes the signed content to tmp_path/content."""
    result = _openssl(
        "smime",
        "-verify",
        "-in",
        tmp_path / "signed.eml",
        "-CAfile",
        pki.ca_path,
        "-out",
        tmp_path / "content",
    )
    assert result.returncode == 0, result.stderr.decode()


def test_sign_then_encrypt_round_trips_through_openssl(pki: Pki, message: bytes, tmp_path: Path) -> None:
    path = tmp_path / "msg.eml"
    encrypted = sign_and_encrypt_smime(
        message, _identity(pki.signer_rsa), [pki.recipient.cert], archive_cert=pki.archive.cert
    )
    path.write_bytes(encrypted)
    signed_entity = _decrypt(path, pki.recipient, tmp_path / "signed.eml")
    assert signed_entity.lstrip().lower().startswith(b"content-type: multipart/signed")

    _verify_signed(pki, tmp_path)
    assert _lf((tmp_path / "content").read_bytes()) == _body_entity(message)


def _assert_rfc9788_payload(entity: bytes, original: bytes) -> None:
    """The Cryptographic Payload carries the header fields, hp="cipher", the legacy v1 marker
    and HP-Outer records of the obscured outer header section (RFC 9788 §2)."""
    payload = email.message_from_bytes(entity, policy=email.policy.default)
    orig = email.message_from_bytes(original, policy=email.policy.default)
    assert payload.get_content_type() == orig.get_content_type()
    assert payload["Content-Type"].params["hp"] == "cipher"
    assert payload["Content-Type"].params["protected-headers"] == "v1"
    for name in ("Subject", "From", "To", "Date", "Message-ID"):
        assert payload[name] == orig[name], name
    outer_records = [str(v) for v in payload.get_all("HP-Outer") or []]
    assert "Subject: [...]" in outer_records
    assert f"Message-ID: {orig['Message-ID']}" in outer_records
    assert _lf(entity).split(b"\n\n", 1)[1] == _lf(original).split(b"\n\n", 1)[1]


def test_protected_headers_are_only_inside(pki: Pki, message: bytes, tmp_path: Path) -> None:
    path = tmp_path / "msg.eml"
    encrypted = encrypt_smime(message, [pki.recipient.cert], protect_subject=True)
    assert b"Your lab results" not in encrypted
    assert email.message_from_bytes(encrypted, policy=email.policy.default)["Subject"] == "[...]"
    path.write_bytes(encrypted)
    _assert_rfc9788_payload(_decrypt(path, pki.recipient, tmp_path / "out.eml"), message)


def test_signed_and_encrypted_protected_headers_verify(pki: Pki, message: bytes, tmp_path: Path) -> None:
    path = tmp_path / "msg.eml"
    encrypted = sign_and_encrypt_smime(
        message, _identity(pki.signer_rsa), [pki.recipient.cert], protect_subject=True
    )
    assert b"Your lab results" not in encrypted
    path.write_bytes(encrypted)
    _decrypt(path, pki.recipient, tmp_path / "signed.eml")

    _verify_signed(pki, tmp_path)
    _assert_rfc9788_payload((tmp_path / "content").read_bytes(), message)
