"""S/MIME for SecureLine: recipient certificate checks, EnvelopedData encryption and signing.

Size: one file on purpose: one standard (S/MIME 4.0, RFC 8551 / CMS RFC 5652): certificate
checks, EnvelopedData and signing share the same MIME and ASN.1 choices.

The cryptography is pyca/``cryptography`` (CMS structures built in Rust on OpenSSL); the MIME
around it is assembled here as bytes, because the stdlib ``email`` generator costs ~30x the
encryption itself on a 200 KB message (``docs/research/performance.md``).

Choices, and why:

* **Content encryption: AES-256-CBC in EnvelopedData** (RFC 5652 §6, RFC 3565) by default.
  RFC 8551 §2.7 makes AES-GCM in AuthEnvelopedData the MUST, but Outlook, Apple Mail and
  Thunderbird ESR are reported to fail on it (``docs/research/encryption.md`` §2-3), so GCM is
  sent only to a recipient whose signed mail advertised it in SMIMECapabilities (RFC 8551
  §2.7.1.1), harvested by ``services/harvest.py``.
* **Key transport: RSA PKCS#1 v1.5** (RFC 8551 §2.3 "MUST support RSA encryption") by default,
  which every deployed client reads; RSAES-OAEP (RFC 3560) when the recipient advertised it.
* **EC recipients: ECDH ephemeral-static key agreement** (RFC 5753, RFC 8551 §2.3) on P-256,
  P-384 and P-521.  ``PKCS7EnvelopeBuilder`` produces none of GCM, OAEP or ECDH, so those
  envelopes are encoded in ``crypto/cms.py``; plain RSA + CBC stays on the builder.
* **Signing: detached SHA-256 signatures** in multipart/signed (RFC 8551 §3.5.3, RFC 1847),
  which a client without S/MIME can still read.
* **Recipient trust**: ``cryptography.x509.verification`` builds and checks the path
  (signatures, validity, name chaining, basicConstraints, path length).  Its web-PKI
  extension rules are kept off for the leaf (we check key usage, EKU and the address here with
  readable reasons) and relaxed for CAs to RFC 5280 basics, because private S/MIME CAs often
  lack the extensions the CA/B Forum TLS rules demand (e.g. a root without keyUsage).

Errors: ``CertificateError`` (a ``ValueError``) when a certificate or key cannot be read or
does not fit; a recipient that is merely unusable is a value, ``(False, reason)``.
"""

from __future__ import annotations

import binascii
import datetime as dt
import secrets
import ssl
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from sealmail.crypto import cms
from sealmail.crypto import header_protection as hp

__all__ = [
    "CertificateError",
    "SmimeCertInfo",
    "TenantIdentity",
    "TrustStore",
    "archive_certificate",
    "encrypt_smime",
    "encryption_problem",
    "inspect_certificate",
    "load_tenant_identity",
    "sign_and_encrypt_smime",
    "sign_smime",
    "unsupported_key",
    "usable_for",
]

# RSA keys below this are refused as recipients; the same floor the verifier applies to CAs.
MIN_RSA_BITS = 2048
# NIST curves ECDH is done on (RFC 5753 §7.1.4 names the schemes for each; RFC 8551 §2.3).
SUPPORTED_EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})

_CRLF = b"\r\n"
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


class CertificateError(ValueError):
    """A certificate or private key that cannot be read, or that does not fit its purpose."""


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class SmimeCertInfo:
    """What Sealmail needs to know about an S/MIME certificate, read once."""

    certificate: x509.Certificate
    fingerprint_sha256: str  # lowercase hex, no separators
    subject: str  # RFC 4514
    issuer: str
    serial: int
    not_before: dt.datetime  # aware, UTC
    not_after: dt.datetime
    emails: tuple[str, ...]  # lowercase
    key_type: str  # "rsa", "ec", "ed25519", "ed448", "dsa" or "unknown"
    key_size: int | None
    # keyUsage allows keyEncipherment (RSA) / keyAgreement (EC), or is absent.
    key_usage_allows_encryption: bool
    # extendedKeyUsage is absent or lists emailProtection / anyExtendedKeyUsage.
    eku_allows_email: bool
    # Further certificates that came with the leaf (a PEM bundle): untrusted path-building help.
    intermediates: tuple[x509.Certificate, ...] = ()

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def inspect_certificate(pem_or_der: bytes) -> SmimeCertInfo:
    """Read a certificate (PEM, a PEM bundle with the leaf first, or DER) and describe it."""
    certs = _load_certificates(pem_or_der)
    return _describe(certs[0], tuple(certs[1:]))


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        if _PEM_CERT in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateError(
            f"not a readable X.509 certificate ({exc}); supply PEM or DER, leaf certificate first"
        ) from exc
    if not certs:
        raise CertificateError("no certificate found; supply PEM or DER, leaf certificate first")
    return certs


def _describe(cert: x509.Certificate, intermediates: tuple[x509.Certificate, ...]) -> SmimeCertInfo:
    try:
        key = cert.public_key()
        extensions = cert.extensions
    except ValueError as exc:  # malformed extension or key: parsing is lazy in cryptography
        raise CertificateError(f"certificate has a malformed key or extension: {exc}") from exc
    key_type, key_size = _key_kind(key)
    return SmimeCertInfo(
        certificate=cert,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        emails=_emails(cert, extensions),
        key_type=key_type,
        key_size=key_size,
        key_usage_allows_encryption=_key_usage_allows_encryption(extensions, key_type),
        eku_allows_email=_eku_allows_email(extensions),
        intermediates=intermediates,
    )


def _key_kind(key: object) -> tuple[str, int | None]:
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    return "unknown", None


def _emails(cert: x509.Certificate, extensions: x509.Extensions) -> tuple[str, ...]:
    # RFC 8550 §3: the address belongs in subjectAltName rfc822Name; the subject's emailAddress
    # attribute is the legacy place, honoured only when the SAN carries no address at all.
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = [name.lower() for name in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        found = []
    if not found:
        found = [
            str(attr.value).lower() for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
        ]
    return tuple(dict.fromkeys(found))


def _key_usage_allows_encryption(extensions: x509.Extensions, key_type: str) -> bool:
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        # RFC 5280 §4.2.1.3: without the extension the key is not restricted.
        return True
    # RFC 8550 §4.4.2: RSA key transport needs keyEncipherment; ECDH needs keyAgreement.
    if key_type == "rsa":
        return usage.key_encipherment
    if key_type == "ec":
        return usage.key_agreement
    return False


def _eku_allows_email(extensions: x509.Extensions) -> bool:
    try:
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    # RFC 8550 §4.4.4: when extendedKeyUsage is present it must allow email protection.
    return ExtendedKeyUsageOID.EMAIL_PROTECTION in eku or _ANY_EKU in eku


# --------------------------------------------------------------------------------- trust


def _normalize_fingerprint(value: str) -> str:
    return value.replace(":", "").replace(" ", "").lower()


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors (system and tenant CAs, roots or intermediates) and tenant-trusted leaves.

    Every certificate in ``anchors`` is trusted as a path end, so a tenant may anchor on an
    intermediate.  ``trusted_fingerprints`` are SHA-256 fingerprints of leaf certificates the
    tenant vouched for directly (a partner's self-signed or private-CA certificate).
    """

    anchors: tuple[x509.Certificate, ...] = ()
    trusted_fingerprints: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        normalized = frozenset(_normalize_fingerprint(fp) for fp in self.trusted_fingerprints)
        object.__setattr__(self, "trusted_fingerprints", normalized)

    @classmethod
    def from_pem(cls, bundle: bytes, *, trusted_fingerprints: Iterable[str] = ()) -> TrustStore:
        """Anchors from a PEM bundle (tenant-provided CAs)."""
        return cls(tuple(_load_certificates(bundle)), frozenset(trusted_fingerprints))

    @classmethod
    def system(cls, cafile: str | Path | None = None) -> TrustStore:
        """The operating system's CA bundle (or ``cafile``) as anchors."""
        path = cafile or ssl.get_default_verify_paths().cafile
        if path is None:
            raise CertificateError("no system CA bundle found; pass cafile= explicitly")
        # Some long-lived public roots carry encodings cryptography now warns about (e.g. a
        # non-positive serial); they are the operating system's choice, not a defect here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return cls.from_pem(Path(path).read_bytes())

    def with_anchors(self, *certs: x509.Certificate) -> TrustStore:
        return TrustStore((*self.anchors, *certs), self.trusted_fingerprints)

    def with_trusted_fingerprint(self, fingerprint_sha256: str) -> TrustStore:
        return TrustStore(self.anchors, self.trusted_fingerprints | {fingerprint_sha256})

    def is_explicitly_trusted(self, info: SmimeCertInfo) -> bool:
        return info.fingerprint_sha256 in self.trusted_fingerprints

    @cached_property
    def _store(self) -> Store | None:
        # Built once per TrustStore: parsing a ~150-certificate system bundle is not free.
        return Store(list(self.anchors)) if self.anchors else None

    def chain_to_anchor(
        self, info: SmimeCertInfo, *, now: dt.datetime
    ) -> tuple[list[x509.Certificate] | None, str]:
        """The verified path leaf → anchor, or None and why not."""
        store = self._store
        if store is None:
            return None, "untrusted issuer: no trusted CAs are configured for this tenant"
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(now)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(info.certificate, list(info.intermediates))
        except VerificationError as exc:
            return None, f"untrusted issuer {info.issuer!r}: {exc}"
        return verified.chain, "chains to " + verified.chain[-1].subject.rfc4514_string()


def _ca_basic_constraints(_policy: Policy, _cert: x509.Certificate, value: x509.BasicConstraints) -> None:
    # RFC 5280 §4.2.1.9: only a certificate asserting cA may issue others.
    if not value.ca:
        raise ValueError("basicConstraints does not assert cA")


def _ca_key_usage(_policy: Policy, _cert: x509.Certificate, value: x509.KeyUsage | None) -> None:
    # RFC 5280 §4.2.1.3: when keyUsage is present on a CA it must allow keyCertSign.  Absent is
    # accepted on purpose: older private S/MIME roots omit it, and web-PKI rules would refuse them.
    if value is not None and not value.key_cert_sign:
        raise ValueError("keyUsage does not allow keyCertSign")


_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _ca_basic_constraints)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
)


def _normalize_address(address: str) -> str:
    local, sep, domain = address.strip().rpartition("@")
    if not sep:
        return address.strip().lower()
    try:
        # rfc822Name holds the domain as A-labels (RFC 5280 §7.5).
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        pass
    return f"{local}@{domain}".lower()


def unsupported_key(info: SmimeCertInfo) -> str:
    """Why Sealmail cannot encrypt to this certificate's key at all, or "" when it can."""
    key = info.certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in SUPPORTED_EC_CURVES:
            return f"unsupported EC curve {key.curve.name}: ECDH (RFC 5753) is done on P-256, P-384 and P-521"
        return ""
    if info.key_type != "rsa":
        return f"unsupported key type {info.key_type}: S/MIME encryption needs an RSA or EC (P-256/P-384) key"
    if info.key_size is not None and info.key_size < MIN_RSA_BITS:
        return f"RSA key too small ({info.key_size} bits, at least {MIN_RSA_BITS} required)"
    return ""


def encryption_problem(info: SmimeCertInfo, *, now: dt.datetime) -> str:
    """Why no mail could ever be encrypted to this certificate now, or "" (address and trust aside)."""
    if now > info.not_after:
        return f"expired on {info.not_after.date().isoformat()}"
    if not info.key_usage_allows_encryption:
        return "key usage does not allow encryption"
    if not info.eku_allows_email:
        return "extended key usage does not allow email protection"
    return unsupported_key(info)


def usable_for(info: SmimeCertInfo, address: str, *, now: dt.datetime, trust: TrustStore) -> tuple[bool, str]:
    """Whether Sealmail may encrypt to ``address`` with this certificate, and why (not).

    Usable means: valid at ``now``, ``address`` among the certificate's addresses, key usage and
    extended key usage allow mail encryption, a key type the encrypter supports, and either a
    tenant fingerprint pin or a verified path to a trusted CA.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if now > info.not_after:
        return False, f"expired on {info.not_after.date().isoformat()}"
    if now < info.not_before:
        return False, f"not valid before {info.not_before.isoformat()}"
    wanted = _normalize_address(address)
    if wanted not in info.emails:
        return False, f"not valid for {address}"
    if not info.key_usage_allows_encryption:
        return False, "key usage does not allow encryption"
    if not info.eku_allows_email:
        return False, "extended key usage does not allow email protection"
    unsupported = unsupported_key(info)
    if unsupported:
        return False, unsupported
    if trust.is_explicitly_trusted(info):
        return True, "explicitly trusted by the tenant"
    chain, reason = trust.chain_to_anchor(info, now=now)
    return chain is not None, reason


# ------------------------------------------------------------------------- tenant identity


@dataclass(frozen=True)
class TenantIdentity:
    """A tenant's signing certificate, its private key and the chain to send along."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]
    info: SmimeCertInfo


def load_tenant_identity(cert_pem: bytes, key_pem: bytes, password: bytes | None = None) -> TenantIdentity:
    """Load and check a tenant's certificate (leaf first, then its chain) and private key."""
    info = inspect_certificate(cert_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=password)
    except TypeError as exc:  # encrypted key without password, or password for a plain key
        raise CertificateError(f"private key password problem: {exc}") from exc
    except ValueError as exc:
        raise CertificateError(
            "private key could not be read: wrong password or not a PEM private key"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{type(key).__name__} keys cannot sign S/MIME here; use an RSA or EC key")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != info.certificate.public_key().public_bytes(*spki):
        raise CertificateError("the private key does not belong to the certificate; upload the matching pair")
    return TenantIdentity(info.certificate, key, info.intermediates, info)


def archive_certificate(identity: TenantIdentity | None, *, now: dt.datetime) -> x509.Certificate | None:
    """The tenant identity's certificate as the S/MIME archive recipient, when it can take one.

    An extra RecipientInfo for it (RFC 5652 §6.2) lets the tenant decrypt what it sent, as
    the OpenPGP archive key does for PGP/MIME; a signing-only certificate is left out.
    """
    if identity is None or encryption_problem(identity.info, now=now):
        return None
    return identity.certificate


# ---------------------------------------------------------------------------------- MIME


def _canonical(message: bytes) -> bytes:
    # RFC 8551 §3.1.1: content is converted to canonical form (CRLF line ends) before it is
    # signed or enveloped, so every receiver hashes and decrypts the same bytes.  Two bytes
    # replaces beat a regex tenfold on large messages; already-canonical input is returned as is.
    if message.count(b"\n") == message.count(_CRLF):
        return message
    return message.replace(_CRLF, b"\n").replace(b"\n", _CRLF)


def _split(message: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (each with its folded continuation lines, CRLF-terminated) and the body."""
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        if message.startswith(_CRLF):  # no header section at all
            return [], message[2:]
        head, body = message.rstrip(b"\r\n"), b""
    # Lines gathered per field and joined once (appending to bytes is quadratic in the folds).
    fields: list[list[bytes]] = []
    for line in head.split(_CRLF):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        elif line:
            fields.append([line])
    return [_CRLF.join(lines) + _CRLF for lines in fields], body


def _field_name(raw_field: bytes) -> bytes:
    return raw_field.split(b":", 1)[0].strip().lower()


def _is_content_field(raw_field: bytes) -> bool:
    # RFC 2045 §9: every "Content-*" field describes the body entity and travels with it.
    return _field_name(raw_field).startswith(b"content-")


def _base64_lines(data: bytes) -> bytes:
    # RFC 2045 §6.8: encoded lines are at most 76 characters.
    encoded = binascii.b2a_base64(data, newline=False)
    return _CRLF.join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + _CRLF


def _outer_list(fields: list[bytes], *, protect: bool = False) -> list[bytes]:
    """The non-structural outer fields, CRLF-terminated; ``protect`` applies RFC 9788's
    hcp_baseline (Subject "[...]", Comments and Keywords dropped)."""
    kept = []
    for raw in fields:
        name = _field_name(raw)
        if name.startswith(b"content-") or name == b"mime-version":
            continue
        outer = hp.outer_field(raw) if protect else raw
        if outer is not None:
            kept.append(outer.rstrip(_CRLF) + _CRLF)
    return kept


def _outer_fields(fields: list[bytes], *, protect: bool = False) -> bytes:
    return b"".join([*_outer_list(fields, protect=protect), b"MIME-Version: 1.0\r\n"])


def _protected_entity(fields: list[bytes], body: bytes, *, encrypted: bool) -> bytes:
    """The Cryptographic Payload with RFC 9788 header protection (``hp`` and, when encrypted,
    ``HP-Outer``) and the legacy ``protected-headers="v1"`` marker."""
    content = sorted(
        (raw for raw in fields if _is_content_field(raw)), key=lambda raw: _field_name(raw) != b"content-type"
    )
    outer = _outer_list(fields, protect=True) if encrypted else None
    return hp.payload_head(content, hp.protected_fields(fields), outer) + _CRLF + body


def _entity(fields: list[bytes], body: bytes) -> bytes:
    return b"".join(raw for raw in fields if _is_content_field(raw)) + _CRLF + body


# ------------------------------------------------------------------------------- encrypt


def _dedupe(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    return list(seen.values())


def _envelope(
    content: bytes, recipients: Sequence[x509.Certificate], capabilities: cms.Capabilities | None
) -> tuple[bytes, str]:
    certs = _dedupe(recipients)
    wants = capabilities or cms.Capabilities()
    if wants.aes_gcm or wants.rsa_oaep or any(_is_ec(c) for c in certs):
        try:
            return cms.envelope(content, certs, gcm=wants.aes_gcm, oaep=wants.rsa_oaep)
        except ValueError as exc:
            raise CertificateError(f"cannot encrypt: {exc} (check usable_for first)") from exc
    return _builder_envelope(content, certs), "enveloped-data"


def _is_ec(cert: x509.Certificate) -> bool:
    return isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def _builder_envelope(content: bytes, recipients: Sequence[x509.Certificate]) -> bytes:
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(content)
    # RFC 5652 §6.2: one RecipientInfo per certificate; each can unwrap the same content key.
    for cert in recipients:
        try:
            builder = builder.add_recipient(cert)
        except TypeError as exc:  # raised by cryptography for non-RSA keys
            raise CertificateError(
                f"cannot encrypt to {cert.subject.rfc4514_string()}: {exc} (check usable_for first)"
            ) from exc
    builder = builder.set_content_encryption_algorithm(algorithms.AES256)
    # Binary: the content is already canonical; DER: we write the MIME wrapper ourselves.
    return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def encrypt_smime(
    message: bytes,
    recipient_certs: Sequence[x509.Certificate],
    *,
    archive_cert: x509.Certificate | None = None,
    protect_subject: bool = False,
    capabilities: cms.Capabilities | None = None,
) -> bytes:
    """Encrypt an RFC 5322 message to each certificate (and the tenant's archive certificate).

    The result is a complete message: the routing headers (From, To, Cc, Date, Message-ID,
    Subject, …) stay outside and the body becomes an ``application/pkcs7-mime`` EnvelopedData
    entity holding the original body entity with its Content-* headers.

    ``protect_subject`` applies RFC 9788 header protection: the enveloped entity carries copies
    of the header fields, ``HP-Outer`` records and ``hp="cipher"`` plus the legacy
    ``protected-headers="v1"``; the outer Subject becomes "[...]".  (The RFC 8551 §3.1
    message/rfc822 wrapper is not used: Outlook and Apple Mail show it as an attachment.)

    ``capabilities`` — what the recipient advertised (harvested SMIMECapabilities): AES-GCM
    makes the envelope AuthEnvelopedData, RSA-OAEP the key transport.  None: CBC and v1.5.
    """
    if not recipient_certs:
        raise ValueError("at least one recipient certificate is required")
    fields, body = _split(_canonical(message))
    if protect_subject:
        inner = _protected_entity(fields, body, encrypted=True)
    else:
        inner = _entity(fields, body)
    return _enveloped_message(
        _outer_fields(fields, protect=protect_subject),
        inner,
        [*recipient_certs, *([archive_cert] if archive_cert is not None else [])],
        capabilities,
    )


def _enveloped_message(
    outer: bytes, inner: bytes, recipients: Sequence[x509.Certificate], capabilities: cms.Capabilities | None
) -> bytes:
    der, smime_type = _envelope(inner, recipients, capabilities)
    # RFC 8551 §3.3, §3.4 and §3.2.2: application/pkcs7-mime with smime-type enveloped-data or
    # authEnveloped-data and the file name smime.p7m.
    return (
        outer
        + b"Content-Type: application/pkcs7-mime; smime-type=%s; " % smime_type.encode()
        + b'name="smime.p7m"\r\n'
        + b'Content-Disposition: attachment; filename="smime.p7m"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n"
        + _CRLF
        + _base64_lines(der)
    )


# ---------------------------------------------------------------------------------- sign


def sign_smime(
    message: bytes,
    signer_cert: x509.Certificate,
    signer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    chain: Sequence[x509.Certificate] = (),
    *,
    protect_headers: bool = True,
) -> bytes:
    """Sign an RFC 5322 message as multipart/signed with a detached SHA-256 CMS signature.

    ``protect_headers`` applies RFC 9788 header protection to the signed-only message: the
    signed part is the Cryptographic Payload, carrying a copy of the header fields under
    ``hp="clear"`` (and the legacy ``protected-headers="v1"``), so a reader can tell that
    From, To and Subject were signed.  Nothing is obscured outside (§2.2: no ``HP-Outer``).
    """
    fields, body = _split(_canonical(message))
    inner = _protected_entity(fields, body, encrypted=False) if protect_headers else _entity(fields, body)
    return _outer_fields(fields) + _signed_entity(inner, signer_cert, signer_key, chain)


def _signed_entity(
    entity: bytes,
    signer_cert: x509.Certificate,
    signer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    chain: Sequence[x509.Certificate],
) -> bytes:
    """``entity`` signed as a multipart/signed entity (its Content-Type, a blank line, its body)."""
    if not entity.isascii():
        # RFC 8551 §3.1.3: a multipart/signed body must survive 7-bit transport unchanged, or the
        # signature breaks in transit; 8bit/binary parts must be QP/base64-encoded first.
        raise ValueError(
            "the body contains 8-bit data; encode its parts as quoted-printable or base64 before signing"
        )
    builder = (
        pkcs7.PKCS7SignatureBuilder().set_data(entity).add_signer(signer_cert, signer_key, hashes.SHA256())
    )
    # add_certificate must come last: set_data and add_signer return builders that drop
    # previously added extra certificates (cryptography 50).
    for cert in chain:
        builder = builder.add_certificate(cert)
    # RFC 5652 §5.2: detached SignedData (no eContent); Binary because the entity is already
    # canonical.  Signed attributes and SMIMECapabilities stay in (RFC 8551 §2.5).
    signature = builder.sign(
        serialization.Encoding.DER,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )
    boundary = _boundary(entity)
    delimiter = b"--" + boundary
    # RFC 1847 §2.1 and RFC 8551 §3.5.3: protocol and micalg parameters are required; the
    # CRLF before each delimiter belongs to the delimiter, not to the signed part.
    content_type = (
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n'
        b' boundary="%s"\r\n' % boundary
    )
    signature_part = (
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
        b"\r\n" + _base64_lines(signature)
    )
    return b"".join(
        [
            content_type,
            b"\r\nThis is a cryptographically signed message in MIME format.\r\n\r\n",
            delimiter + _CRLF,
            entity,
            _CRLF + delimiter + _CRLF,
            signature_part,
            _CRLF + delimiter + b"--" + _CRLF,
        ]
    )


def _boundary(content: bytes) -> bytes:
    while True:
        boundary = b"----sealmail-signed-" + secrets.token_hex(12).encode("ascii")
        if boundary not in content:
            return boundary


def sign_and_encrypt_smime(
    message: bytes,
    signer: TenantIdentity,
    recipient_certs: Sequence[x509.Certificate],
    *,
    archive_cert: x509.Certificate | None = None,
    protect_subject: bool = False,
    capabilities: cms.Capabilities | None = None,
) -> bytes:
    """Sign, then encrypt the multipart/signed entity (RFC 8551 §3.7: the signature is hidden).

    With ``protect_subject`` the signed part is the RFC 9788 Cryptographic Payload, so the
    protected header fields are both signed and encrypted.
    """
    fields, body = _split(_canonical(message))
    if protect_subject:
        inner = _protected_entity(fields, body, encrypted=True)
    else:
        inner = _entity(fields, body)
    signed = _signed_entity(inner, signer.certificate, signer.private_key, signer.chain)
    return _enveloped_message(
        _outer_fields(fields, protect=protect_subject),
        signed,
        [*recipient_certs, *([archive_cert] if archive_cert is not None else [])],
        capabilities,
    )
