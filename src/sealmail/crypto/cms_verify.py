"""Verifying a detached CMS signature (RFC 5652 §5.6) before anything signed in it is believed.

pyca/``cryptography`` can make SignedData but not check it, and the harvest of a
correspondent's SMIMECapabilities (RFC 8551 §2.5.2) must only believe attributes whose
signature verifies: otherwise anyone could mail the tenant a certificate they do not hold
with a forged attribute list attached.  This checks what RFC 5652 §5.6 asks of one signer:

* the ``messageDigest`` signed attribute equals the digest of the signed content;
* the signature over the DER ``SET OF`` signed attributes verifies with the public key of
  the certificate the ``SignerInfo`` names (issuer and serial, or subject key identifier).

Whether that certificate is trustworthy (its chain, its address) is the caller's question.
Only SHA-2 digests and RSA (PKCS#1 v1.5, PSS) or ECDSA signatures are accepted: a SHA-1
signature proves too little to learn from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding

from sealmail.crypto import der
from sealmail.crypto.cms import ID_SIGNED_DATA, Capabilities, capabilities_from_attributes

__all__ = ["VerifiedSignature", "verify_detached"]

_MESSAGE_DIGEST: Final = "1.2.840.113549.1.9.4"
_DIGESTS: Final[dict[str, tuple[str, hashes.HashAlgorithm]]] = {
    "2.16.840.1.101.3.4.2.1": ("sha256", hashes.SHA256()),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashes.SHA384()),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashes.SHA512()),
}
_RSA_PKCS1: Final = frozenset(
    {
        "1.2.840.113549.1.1.1",  # rsaEncryption (RFC 3370 §3.2: the digest comes from SignerInfo)
        "1.2.840.113549.1.1.11",  # sha256WithRSAEncryption
        "1.2.840.113549.1.1.12",  # sha384WithRSAEncryption
        "1.2.840.113549.1.1.13",  # sha512WithRSAEncryption
    }
)
_RSA_PSS: Final = "1.2.840.113549.1.1.10"
_ECDSA: Final = frozenset({"1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"})
_SKI_TAG: Final = 0x80  # SignerIdentifier subjectKeyIdentifier [0] IMPLICIT


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """One signer whose signature over the content verified, and what it signed."""

    signer: x509.Certificate
    # The signed SMIMECapabilities, or None when the signer advertised none.
    capabilities: Capabilities | None


def _certificates(signed_data: list[der.Tlv]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for item in signed_data:
        if item.tag != 0xA0:  # certificates [0] IMPLICIT CertificateSet
            continue
        for child in item.children:
            try:
                certs.append(x509.load_der_x509_certificate(child.raw))
            except ValueError:
                continue  # an attribute certificate or other choice: not a signer
    return certs


def _named(sid: der.Tlv, certs: list[x509.Certificate]) -> x509.Certificate | None:
    for cert in certs:
        if sid.tag == der.SEQUENCE:
            issuer, serial = sid.children[:2]
            if issuer.raw == cert.issuer.public_bytes() and int.from_bytes(
                serial.content, "big", signed=True
            ) == (cert.serial_number):
                return cert
        elif sid.tag == _SKI_TAG:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.content:
                return cert
    return None


def _signature_ok(
    cert: x509.Certificate, algorithm: str, digest: hashes.HashAlgorithm, data: bytes, sig: bytes
) -> bool:
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm in _RSA_PKCS1:
            key.verify(sig, data, asym_padding.PKCS1v15(), digest)
        elif isinstance(key, rsa.RSAPublicKey) and algorithm == _RSA_PSS:
            pss = asym_padding.PSS(asym_padding.MGF1(digest), asym_padding.PSS.AUTO)
            key.verify(sig, data, pss, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm in _ECDSA:
            key.verify(sig, data, ec.ECDSA(digest))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def _verify_signer(
    info: list[der.Tlv], content: bytes, certs: list[x509.Certificate]
) -> VerifiedSignature | None:
    # SignerInfo: version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature, …
    if len(info) < 6 or info[3].tag != 0xA0:
        return None  # no signed attributes: nothing to learn, and no content-type binding
    sid, digest_alg, attrs, sig_alg, signature = info[1], info[2], info[3], info[4], info[5]
    known = _DIGESTS.get(der.read_oid(digest_alg.children[0]))
    cert = _named(sid, certs)
    if known is None or cert is None:
        return None
    name, digest = known
    wanted = hashlib.new(name, content).digest()
    found = [a for a in attrs.children if der.read_oid(a.children[0]) == _MESSAGE_DIGEST]
    if len(found) != 1 or [v.content for v in found[0].children[1].children] != [wanted]:
        return None
    # RFC 5652 §5.4: the signature covers the attributes' DER with an explicit SET OF tag.
    signed = der.tlv(der.SET, attrs.content)
    if not _signature_ok(cert, der.read_oid(sig_alg.children[0]), digest, signed, signature.content):
        return None
    return VerifiedSignature(cert, capabilities_from_attributes(attrs))


def verify_detached(signature_der: bytes, content: bytes) -> VerifiedSignature | None:
    """The first signer whose signature over ``content`` verifies, or None.

    ``content`` is the signed MIME entity exactly as it travelled (RFC 1847 §2.1: the bytes
    between the first delimiter line and the CRLF before the next), in canonical CRLF form.
    """
    try:
        top, _ = der.parse(signature_der)
        content_type, explicit = top.children[:2]
        if der.read_oid(content_type) != ID_SIGNED_DATA:
            return None
        signed_data = explicit.children[0].children
        certs = _certificates(signed_data)
        for signer_info in signed_data[-1].children:
            verified = _verify_signer(signer_info.children, content, certs)
            if verified is not None:
                return verified
    except (der.DerError, ValueError, IndexError):
        return None
    return None
