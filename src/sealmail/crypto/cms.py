"""CMS enveloping beyond what pyca/``cryptography`` offers, and SMIMECapabilities reading.

* **ECDH recipients** (RFC 5753 §3.1, RFC 8551 §2.3): KeyAgreeRecipientInfo with an ephemeral
  key, ``dhSinglePass-stdDH-sha{256,384,512}kdf-scheme`` (the hash follows the curve size,
  RFC 5753 §8 / RFC 5008) and AES-256 key wrap (RFC 3394) under a KEK from the ANSI X9.63 KDF
  over ECC-CMS-SharedInfo.
* **RSA recipients**: KeyTransRecipientInfo with RSAES-PKCS1-v1_5 (what every client reads), or
  RSAES-OAEP with SHA-256 (RFC 3560, RFC 8551 §2.3 SHOULD+) when the recipient advertised it.
* **Content encryption**: EnvelopedData with AES-256-CBC (RFC 3565), or AuthEnvelopedData with
  AES-256-GCM (RFC 5083, RFC 5084; 12-octet nonce, 16-octet ICV) — RFC 8551 §2.7's MUST — when
  the recipient advertised GCM in its SMIMECapabilities (RFC 8551 §2.5.2, §2.7.1.1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, keywrap, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from sealmail.crypto import der

__all__ = ["Capabilities", "capabilities_from_attributes", "capabilities_from_signature", "envelope"]

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
ID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
ID_SMIME_CAPABILITIES = "1.2.840.113549.1.9.15"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSAES_OAEP = "1.2.840.113549.1.1.7"
MGF1 = "1.2.840.113549.1.1.8"
SHA256 = "2.16.840.1.101.3.4.2.1"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
AES256_WRAP = "2.16.840.1.101.3.4.1.45"
AES128_GCM = "2.16.840.1.101.3.4.1.6"
AES256_GCM = "2.16.840.1.101.3.4.1.46"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
# RFC 5753 §7.1.4 (SEC 1): single-pass standard ECDH with the X9.63 KDF over SHA-2.
_ECDH_SCHEMES: dict[int, tuple[str, hashes.HashAlgorithm]] = {
    256: ("1.3.132.1.11.1", hashes.SHA256()),
    384: ("1.3.132.1.11.2", hashes.SHA384()),
    521: ("1.3.132.1.11.3", hashes.SHA512()),
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a correspondent's signed mail said it can decrypt (RFC 8551 §2.5.2)."""

    aes_gcm: bool = False
    rsa_oaep: bool = False

    def to_text(self) -> str:
        return ",".join(name for name, on in (("aes-gcm", self.aes_gcm), ("rsa-oaep", self.rsa_oaep)) if on)

    @classmethod
    def from_text(cls, text: str | None) -> Capabilities:
        names = {n.strip() for n in (text or "").split(",")}
        return cls(aes_gcm="aes-gcm" in names, rsa_oaep="rsa-oaep" in names)


def _alg(identifier: str, params: bytes = b"") -> bytes:
    return der.sequence(der.oid(identifier), params)


def _issuer_and_serial(cert: x509.Certificate) -> bytes:
    return der.sequence(cert.issuer.public_bytes(), der.integer(cert.serial_number))


def _ktri(cert: x509.Certificate, key: rsa.RSAPublicKey, cek: bytes, oaep: bool) -> bytes:
    if oaep:
        sha256 = _alg(SHA256, der.null())
        # RFC 4055 §4.1 RSAES-OAEP-params: hashFunc [0] and maskGenFunc [1]; pSource default.
        params = der.sequence(der.context(0, sha256), der.context(1, _alg(MGF1, sha256)))
        algorithm = _alg(RSAES_OAEP, params)
        mgf = asym_padding.MGF1(hashes.SHA256())
        wrapped = key.encrypt(cek, asym_padding.OAEP(mgf, hashes.SHA256(), None))
    else:
        algorithm = _alg(RSA_ENCRYPTION, der.null())
        wrapped = key.encrypt(cek, asym_padding.PKCS1v15())
    # RFC 5652 §6.2.1: version 0 with issuerAndSerialNumber.
    return der.sequence(der.integer(0), _issuer_and_serial(cert), algorithm, der.octet_string(wrapped))


def _kari(cert: x509.Certificate, key: ec.EllipticCurvePublicKey, cek: bytes) -> bytes:
    scheme = _ECDH_SCHEMES.get(key.curve.key_size)
    if scheme is None:
        raise ValueError(f"unsupported curve {key.curve.name} for ECDH (RFC 5753)")
    scheme_oid, kdf_hash = scheme
    ephemeral = ec.generate_private_key(key.curve)
    shared = ephemeral.exchange(ec.ECDH(), key)
    wrap_alg = _alg(AES256_WRAP)
    # RFC 5753 §7.2 ECC-CMS-SharedInfo: keyInfo is the wrap algorithm, suppPubInfo the KEK
    # length in bits as a 32-bit big-endian integer.
    shared_info = der.sequence(wrap_alg, der.context(2, der.octet_string((256).to_bytes(4, "big"))))
    kek = X963KDF(algorithm=kdf_hash, length=32, sharedinfo=shared_info).derive(shared)
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    # RFC 5753 §3.1.1: originatorKey with id-ecPublicKey, parameters absent (the recipient's curve).
    originator = der.context(0, der.context(1, _alg(EC_PUBLIC_KEY) + der.bit_string(point)))
    encrypted_key = der.sequence(_issuer_and_serial(cert), der.octet_string(keywrap.aes_key_wrap(kek, cek)))
    # RFC 5652 §6.2: RecipientInfo ::= CHOICE { …, kari [1] KeyAgreeRecipientInfo, … } under
    # IMPLICIT TAGS, so the SEQUENCE tag is replaced by [1].
    return der.context(
        1,
        der.integer(3) + originator + _alg(scheme_oid, wrap_alg) + der.sequence(encrypted_key),
    )


def _recipient_infos(certs: Sequence[x509.Certificate], cek: bytes, oaep: bool) -> tuple[list[bytes], bool]:
    infos, any_kari = [], False
    for cert in certs:
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            infos.append(_ktri(cert, key, cek, oaep))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            infos.append(_kari(cert, key, cek))
            any_kari = True
        else:
            raise ValueError(f"cannot encrypt to a {type(key).__name__} certificate")
    return infos, any_kari


def envelope(
    content: bytes, recipients: Sequence[x509.Certificate], *, gcm: bool = False, oaep: bool = False
) -> tuple[bytes, str]:
    """DER ContentInfo enveloping ``content`` to every certificate, and its smime-type."""
    cek = os.urandom(32)
    infos, any_kari = _recipient_infos(recipients, cek, oaep)
    if gcm:
        nonce = os.urandom(12)
        sealed = AESGCM(cek).encrypt(nonce, content, None)
        ciphertext, tag = sealed[:-16], sealed[-16:]
        params = der.sequence(der.octet_string(nonce), der.integer(16))
        eci = der.sequence(
            der.oid(ID_DATA), _alg(AES256_GCM, params), der.context(0, ciphertext, constructed=False)
        )
        # RFC 5083 §2.1: version is always 0; no authAttrs, so no additional authenticated data.
        body = der.sequence(der.integer(0), der.set_of(*infos), eci, der.octet_string(tag))
        return der.sequence(der.oid(ID_AUTH_ENVELOPED_DATA), der.context(0, body)), "authEnveloped-data"
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES256(cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(content) + padder.finalize()) + encryptor.finalize()
    eci = der.sequence(
        der.oid(ID_DATA),
        _alg(AES256_CBC, der.octet_string(iv)),
        der.context(0, ciphertext, constructed=False),
    )
    # RFC 5652 §6.1: version 2 as soon as a RecipientInfo is not version 0 (kari is 3).
    body = der.sequence(der.integer(2 if any_kari else 0), der.set_of(*infos), eci)
    return der.sequence(der.oid(ID_ENVELOPED_DATA), der.context(0, body)), "enveloped-data"


# ------------------------------------------------------------------------- capabilities


def _capabilities_value(value: der.Tlv) -> Capabilities:
    gcm = oaep = False
    for capability in value.children:
        parts = capability.children
        if not parts:
            continue
        name = der.read_oid(parts[0])
        gcm = gcm or name in (AES256_GCM, AES128_GCM)
        oaep = oaep or name == RSAES_OAEP
    return Capabilities(aes_gcm=gcm, rsa_oaep=oaep)


def capabilities_from_signature(signature_der: bytes) -> Capabilities | None:
    """The SMIMECapabilities signed attribute of a detached SignedData (RFC 8551 §2.5.2).

    None when the signature carries none (or is not SignedData): nothing is learned.
    Which signer it belongs to is not checked here; the caller pairs it with the certificate.
    """
    try:
        top, _ = der.parse(signature_der)
        content_type, explicit = top.children[:2]
        if der.read_oid(content_type) != ID_SIGNED_DATA:
            return None
        signed_data = explicit.children[0].children
        signer_infos = signed_data[-1]
        for signer_info in signer_infos.children:
            for field in signer_info.children:
                if field.tag != 0xA0:  # signedAttrs [0] IMPLICIT SET OF Attribute
                    continue
                found = capabilities_from_attributes(field)
                if found is not None:
                    return found
    except (der.DerError, ValueError, IndexError):
        return None
    return None


def capabilities_from_attributes(signed_attrs: der.Tlv) -> Capabilities | None:
    """The SMIMECapabilities among one SignerInfo's signed attributes, or None."""
    for attribute in signed_attrs.children:
        attr_type, values = attribute.children[:2]
        if der.read_oid(attr_type) == ID_SMIME_CAPABILITIES and values.children:
            return _capabilities_value(values.children[0])
    return None
