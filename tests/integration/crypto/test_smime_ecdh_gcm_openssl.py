"""ECDH recipients, AuthEnvelopedData (AES-GCM) and RSA-OAEP, checked by ``openssl cms``.

OpenSSL 3 is the independent implementation: it must decrypt what Sealmail builds by hand
(``crypto/cms.py``) and name the algorithms RFC 5753, RFC 5083/5084 and RFC 3560 ask for.
Its own signatures are the input for SMIMECapabilities harvesting.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealmail.crypto.cms import Capabilities, capabilities_from_signature
from sealmail.crypto.smime import encrypt_smime

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed (apt-get install openssl)")

NOW = dt.datetime.now(dt.UTC)
MESSAGE = (
    b"From: Clinic <results@clinic.example>\r\nTo: alice@patients.example\r\nSubject: Lab results\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour results are ready.\r\n"
)
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _party(directory: Path, name: str, key: Key) -> tuple[x509.Certificate, Path, Path]:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    usage = dict.fromkeys(
        "digital_signature content_commitment key_encipherment data_encipherment key_agreement "
        "key_cert_sign crl_sign encipher_only decipher_only".split(),
        False,
    )
    usage["digital_signature"] = True
    usage["key_agreement" if isinstance(key, ec.EllipticCurvePrivateKey) else "key_encipherment"] = True
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("alice@patients.example")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, cert_path, key_path


def _openssl(*args: str | Path, input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *map(str, args)], input=input_bytes, capture_output=True, timeout=60, check=False
    )


KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
CASES = [
    ("p256", None, ["dhSinglePass-stdDH-sha256kdf-scheme", "id-aes256-wrap", "aes-256-cbc"]),
    ("p384", None, ["dhSinglePass-stdDH-sha384kdf-scheme", "id-aes256-wrap", "aes-256-cbc"]),
    ("p256", Capabilities(aes_gcm=True), ["dhSinglePass-stdDH-sha256kdf-scheme", "aes-256-gcm"]),
    ("p384", Capabilities(aes_gcm=True), ["dhSinglePass-stdDH-sha384kdf-scheme", "aes-256-gcm"]),
    ("rsa", None, ["rsaEncryption", "aes-256-cbc"]),
    ("rsa", Capabilities(aes_gcm=True, rsa_oaep=True), ["rsaesOaep", "aes-256-gcm", "sha256"]),
    ("rsa", Capabilities(rsa_oaep=True), ["rsaesOaep", "aes-256-cbc"]),
]


@pytest.mark.parametrize(("kind", "capabilities", "algorithms"), CASES)
def test_openssl_decrypts_and_names_the_rfc_algorithms(
    tmp_path: Path, kind: str, capabilities: Capabilities | None, algorithms: list[str]
) -> None:
    cert, cert_path, key_path = _party(tmp_path, kind, KEYS[kind]())
    encrypted = encrypt_smime(MESSAGE, [cert], capabilities=capabilities)
    path = tmp_path / "msg.eml"
    path.write_bytes(encrypted)
    gcm = capabilities is not None and capabilities.aes_gcm
    # RFC 8551 §3.4: AuthEnvelopedData is labelled smime-type=authEnveloped-data.
    expected_type = b"authEnveloped-data" if gcm else b"enveloped-data"
    assert b"smime-type=" + expected_type + b";" in encrypted
    decrypted = _openssl("cms", "-decrypt", "-in", path, "-recip", cert_path, "-inkey", key_path)
    assert decrypted.returncode == 0, decrypted.stderr.decode()
    assert decrypted.stdout.endswith(b"\r\n\r\nYour results are ready.\r\n")
    printed = _openssl("cms", "-cmsout", "-print", "-in", path)
    assert printed.returncode == 0, printed.stderr.decode()
    text = printed.stdout.decode()
    content_type = "id-smime-ct-authEnvelopedData" if gcm else "pkcs7-envelopedData"
    assert f"contentType: {content_type}" in text
    for name in algorithms:
        assert name in text


def test_a_tampered_gcm_envelope_is_refused_by_openssl(tmp_path: Path) -> None:
    cert, cert_path, key_path = _party(tmp_path, "p256", KEYS["p256"]())
    der_path = tmp_path / "msg.der"
    encrypted = encrypt_smime(MESSAGE, [cert], capabilities=Capabilities(aes_gcm=True))
    converted = _openssl("cms", "-cmsout", "-outform", "DER", "-out", der_path, input_bytes=encrypted)
    assert converted.returncode == 0, converted.stderr.decode()
    der = bytearray(der_path.read_bytes())
    der[-40] ^= 0x01  # inside the ciphertext, before the 16-octet tag
    der_path.write_bytes(bytes(der))
    # RFC 5083: integrity — a flipped bit must fail authentication, unlike CBC.
    result = _openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", der_path, "-recip", cert_path, "-inkey", key_path
    )
    assert result.returncode != 0


def test_capabilities_are_read_from_an_openssl_signature(tmp_path: Path) -> None:
    _cert, cert_path, key_path = _party(tmp_path, "signer", KEYS["p256"]())
    signed = _openssl(
        "cms",
        "-sign",
        "-binary",
        "-outform",
        "DER",
        "-signer",
        cert_path,
        "-inkey",
        key_path,
        input_bytes=b"hello\r\n",
    )
    assert signed.returncode == 0, signed.stderr.decode()
    # OpenSSL advertises CBC ciphers only (RFC 8551 §2.5.2): present, but no GCM, no OAEP.
    assert capabilities_from_signature(signed.stdout) == Capabilities(aes_gcm=False, rsa_oaep=False)
    bare = _openssl(
        "cms",
        "-sign",
        "-binary",
        "-nosmimecap",
        "-outform",
        "DER",
        "-signer",
        cert_path,
        "-inkey",
        key_path,
        input_bytes=b"hello\r\n",
    )
    assert bare.returncode == 0, bare.stderr.decode()
    assert capabilities_from_signature(bare.stdout) is None
    assert capabilities_from_signature(b"not der at all") is None
