"""Recipient certificate checks and S/MIME assembly, without any external tool.

Certificates are minted here with ``cryptography`` (trustme issues TLS server certificates
only, with no rfc822Name or key-usage control).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealmail.crypto.smime import (
    CertificateError,
    SmimeCertInfo,
    TrustStore,
    encrypt_smime,
    inspect_certificate,
    load_tenant_identity,
    sign_smime,
    usable_for,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ADDRESS = "alice@clinic.example"

_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    flags.update(allowed)
    return x509.KeyUsage(**flags)


@dataclass
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "Sealmail Test S/MIME CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=365))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def issue(
        self,
        *,
        emails: tuple[str, ...] = (ADDRESS,),
        subject_email: str | None = None,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = _RSA_KEY,
        key_usage: x509.KeyUsage | None = None,
        eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
        not_before: dt.datetime = NOW - dt.timedelta(days=1),
        not_after: dt.datetime = NOW + dt.timedelta(days=365),
    ) -> x509.Certificate:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, "Alice")]
        if subject_email:
            attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, subject_email))
        if key_usage is None:
            key_usage = _key_usage(digital_signature=True, key_encipherment=True)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
        )
        if emails:
            san = x509.SubjectAlternativeName([x509.RFC822Name(e) for e in emails])
            builder = builder.add_extension(san, critical=False)
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        return builder.sign(self.key, hashes.SHA256())


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority.create()


@pytest.fixture(scope="module")
def trust(ca: Authority) -> TrustStore:
    return TrustStore(anchors=(ca.cert,))


def _info(cert: x509.Certificate) -> SmimeCertInfo:
    return inspect_certificate(cert.public_bytes(serialization.Encoding.PEM))


def test_certificate_from_trusted_ca_is_usable(ca: Authority, trust: TrustStore) -> None:
    ok, reason = usable_for(_info(ca.issue()), ADDRESS, now=NOW, trust=trust)
    assert ok, reason
    assert "Sealmail Test S/MIME CA" in reason


def test_inspect_reports_fingerprint_emails_and_key(ca: Authority) -> None:
    cert = ca.issue(emails=("Alice@Clinic.Example", "a2@clinic.example"))
    info = inspect_certificate(cert.public_bytes(serialization.Encoding.DER))
    assert info.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert info.emails == ("alice@clinic.example", "a2@clinic.example")
    assert (info.key_type, info.key_size) == ("rsa", 2048)
    assert info.key_usage_allows_encryption
    assert info.eku_allows_email
    assert info.issuer == "CN=Sealmail Test S/MIME CA"
    assert info.not_after == NOW + dt.timedelta(days=365)


def test_garbage_is_a_certificate_error() -> None:
    with pytest.raises(CertificateError, match=r"not a readable X\.509 certificate"):
        inspect_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError):
        inspect_certificate(b"\x30\x03\x02\x01\x00")


def test_expired_certificate_is_unusable(ca: Authority, trust: TrustStore) -> None:
    cert = ca.issue(not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    ok, reason = usable_for(_info(cert), ADDRESS, now=NOW, trust=trust)
    assert not ok
    assert reason.startswith("expired on 2026-05-31")


def test_not_yet_valid_certificate_is_unusable(ca: Authority, trust: TrustStore) -> None:
    cert = ca.issue(not_before=NOW + dt.timedelta(days=1))
    ok, reason = usable_for(_info(cert), ADDRESS, now=NOW, trust=trust)
    assert not ok
    assert reason.startswith("not valid before 2026-06-02")


def test_other_address_is_unusable(ca: Authority, trust: TrustStore) -> None:
    ok, reason = usable_for(_info(ca.issue()), "bob@clinic.example", now=NOW, trust=trust)
    assert (ok, reason) == (False, "not valid for bob@clinic.example")


def test_address_match_ignores_case(ca: Authority, trust: TrustStore) -> None:
    ok, reason = usable_for(_info(ca.issue()), "ALICE@Clinic.EXAMPLE", now=NOW, trust=trust)
    assert ok, reason


def test_subject_email_is_the_fallback_without_san(ca: Authority, trust: TrustStore) -> None:
    info = _info(ca.issue(emails=(), subject_email="Alice@Clinic.example"))
    assert info.emails == (ADDRESS,)
    ok, reason = usable_for(info, ADDRESS, now=NOW, trust=trust)
    assert ok, reason


def test_subject_email_is_ignored_when_san_has_addresses(ca: Authority, trust: TrustStore) -> None:
    info = _info(ca.issue(emails=("other@clinic.example",), subject_email=ADDRESS))
    ok, reason = usable_for(info, ADDRESS, now=NOW, trust=trust)
    assert (ok, reason) == (False, f"not valid for {ADDRESS}")


def test_signature_only_key_usage_is_unusable(ca: Authority, trust: TrustStore) -> None:
    cert = ca.issue(key_usage=_key_usage(digital_signature=True))
    ok, reason = usable_for(_info(cert), ADDRESS, now=NOW, trust=trust)
    assert (ok, reason) == (False, "key usage does not allow encryption")


def test_eku_without_email_protection_is_unusable(ca: Authority, trust: TrustStore) -> None:
    cert = ca.issue(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    ok, reason = usable_for(_info(cert), ADDRESS, now=NOW, trust=trust)
    assert (ok, reason) == (False, "extended key usage does not allow email protection")


def test_absent_eku_is_allowed(ca: Authority, trust: TrustStore) -> None:
    ok, reason = usable_for(_info(ca.issue(eku=None)), ADDRESS, now=NOW, trust=trust)
    assert ok, reason


def test_untrusted_issuer_is_unusable_until_the_tenant_pins_it(ca: Authority) -> None:
    stranger = Authority.create("Someone Else's CA")
    info = _info(stranger.issue())
    ok, reason = usable_for(info, ADDRESS, now=NOW, trust=TrustStore(anchors=(ca.cert,)))
    assert not ok
    assert reason.startswith("untrusted issuer")

    pinned = TrustStore(anchors=(ca.cert,)).with_trusted_fingerprint(info.fingerprint_sha256.upper())
    ok, reason = usable_for(info, ADDRESS, now=NOW, trust=pinned)
    assert (ok, reason) == (True, "explicitly trusted by the tenant")


def test_no_anchors_means_untrusted(ca: Authority) -> None:
    ok, reason = usable_for(_info(ca.issue()), ADDRESS, now=NOW, trust=TrustStore())
    assert not ok
    assert reason.startswith("untrusted issuer")


def test_pinning_does_not_override_expiry(ca: Authority) -> None:
    info = _info(ca.issue(not_after=NOW - dt.timedelta(seconds=1), not_before=NOW - dt.timedelta(days=9)))
    pinned = TrustStore().with_trusted_fingerprint(info.fingerprint_sha256)
    ok, reason = usable_for(info, ADDRESS, now=NOW, trust=pinned)
    assert not ok
    assert reason.startswith("expired on")


def test_chain_through_intermediate_in_bundle(ca: Authority) -> None:
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intermediate")]))
        .issuer_name(ca.cert.subject)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=900))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    inter = Authority(inter_cert, inter_key)
    leaf = inter.issue()
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, inter_cert))
    info = inspect_certificate(pem)
    assert info.intermediates == (inter_cert,)
    ok, reason = usable_for(info, ADDRESS, now=NOW, trust=TrustStore(anchors=(ca.cert,)))
    assert ok, reason
    # Without the intermediate the path cannot be built.
    ok, reason = usable_for(_info(leaf), ADDRESS, now=NOW, trust=TrustStore(anchors=(ca.cert,)))
    assert not ok
    assert reason.startswith("untrusted issuer")


def test_certificate_issued_by_a_non_ca_does_not_chain(ca: Authority) -> None:
    not_a_ca_key = ec.generate_private_key(ec.SECP256R1())
    not_a_ca = Authority(
        ca.issue(key=not_a_ca_key, key_usage=_key_usage(key_agreement=True, key_cert_sign=True)),
        not_a_ca_key,
    )
    leaf = not_a_ca.issue()
    info = inspect_certificate(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, not_a_ca.cert))
    )
    ok, reason = usable_for(info, ADDRESS, now=NOW, trust=TrustStore(anchors=(ca.cert,)))
    assert not ok
    assert reason.startswith("untrusted issuer")


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_ec_recipient_is_usable_through_ecdh(
    ca: Authority, trust: TrustStore, curve: ec.EllipticCurve
) -> None:
    # RFC 8551 §2.3 / RFC 5753: EC certificates are reached by ECDH key agreement.
    cert = ca.issue(key=ec.generate_private_key(curve), key_usage=_key_usage(key_agreement=True))
    ok, reason = usable_for(_info(cert), ADDRESS, now=NOW, trust=trust)
    assert ok, reason


def test_an_ec_curve_without_an_ecdh_scheme_is_unsupported(ca: Authority, trust: TrustStore) -> None:
    cert = ca.issue(key=ec.generate_private_key(ec.SECP256K1()), key_usage=_key_usage(key_agreement=True))
    ok, reason = usable_for(_info(cert), ADDRESS, now=NOW, trust=trust)
    assert not ok
    assert reason.startswith("unsupported EC curve")


def test_naive_now_is_refused(ca: Authority, trust: TrustStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        usable_for(_info(ca.issue()), ADDRESS, now=NOW.replace(tzinfo=None), trust=trust)


# --------------------------------------------------------------------------- assembly

MESSAGE = (
    b"From: Clinic <noreply@clinic.example>\n"
    b"To: alice@clinic.example\n"
    b"Subject: Lab results\n"
    b"Message-ID: <1@clinic.example>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 7bit\n"
    b"\n"
    b"Your results are ready.\n"
)


def _payload(parsed: email.message.Message) -> bytes:
    payload = parsed.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def test_encrypted_message_keeps_routing_headers_and_hides_content(ca: Authority) -> None:
    cert = ca.issue()
    out = encrypt_smime(MESSAGE, [cert])
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"\n" not in out.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert parsed["Subject"] == "Lab results"
    assert parsed["Message-ID"] == "<1@clinic.example>"
    assert parsed.get_content_type() == "application/pkcs7-mime"
    assert parsed.get_param("smime-type") == "enveloped-data"
    assert head.count(b"MIME-Version") == 1
    assert b"Your results" not in out
    assert max(len(line) for line in body.split(b"\r\n")) == 76

    decrypted = pkcs7.pkcs7_decrypt_der(_payload(parsed), cert, _RSA_KEY, [])
    assert decrypted == (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\n"
        b"Your results are ready.\r\n"
    )


def test_protect_subject_injects_rfc9788_headers_into_the_payload(ca: Authority) -> None:
    cert = ca.issue()
    out = encrypt_smime(MESSAGE, [cert], protect_subject=True)
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert parsed["Subject"] == "[...]"
    inner = email.message_from_bytes(
        pkcs7.pkcs7_decrypt_der(_payload(parsed), cert, _RSA_KEY, []), policy=email.policy.default
    )
    assert inner.get_content_type() == "text/plain"
    assert inner["Content-Type"].params["hp"] == "cipher"
    assert inner["Content-Type"].params["protected-headers"] == "v1"
    assert inner["Subject"] == "Lab results"
    assert "Subject: [...]" in [str(v) for v in inner.get_all("HP-Outer") or []]
    assert inner.get_content() == "Your results are ready.\r\n"


def test_signing_refuses_unencoded_8bit_bodies(ca: Authority) -> None:
    cert = ca.issue(key_usage=_key_usage(digital_signature=True))
    with pytest.raises(ValueError, match="8-bit"):
        sign_smime(MESSAGE.replace(b"ready.", "prêts.".encode()), cert, _RSA_KEY)


def test_tenant_identity_requires_the_matching_key(ca: Authority) -> None:
    cert_pem = ca.issue().public_bytes(serialization.Encoding.PEM)
    key_pem = _RSA_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    identity = load_tenant_identity(
        cert_pem + ca.cert.public_bytes(serialization.Encoding.PEM), key_pem, b"s3cret"
    )
    assert identity.chain == (ca.cert,)

    with pytest.raises(CertificateError, match="wrong password"):
        load_tenant_identity(cert_pem, key_pem, b"nope")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        load_tenant_identity(cert_pem, other_pem)
