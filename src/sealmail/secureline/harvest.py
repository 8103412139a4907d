"""Harvesting recipients' certificates from mail the SMTP gateway receives (tenant opt-in).

Two sources, both about the *sender* of the received mail: an Autocrypt header (Level 1)
whose ``addr`` matches the From address, and the signer certificates of an S/MIME
``multipart/signed`` message.  Harvested certificates are stored with source
``autocrypt``/``harvested``; S/MIME ones are used only if they chain to a trusted CA (the
tenant vouches for nothing by harvesting), and an OpenPGP one only for the From address.
A signature's SMIMECapabilities (RFC 8551 §2.5.2) are stored with its certificate only when
the signature verifies over the signed part and the certificate chains to a trusted CA; mail a
machine sent (``Auto-Submitted``, RFC 3834) updates no Autocrypt state (Level 1 §2.3).
"""

from __future__ import annotations

import email.policy
import email.utils
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from sealmail.crypto import cms, smime
from sealmail.crypto.cms_verify import verify_detached
from sealmail.errors import ValidationFailed
from sealmail.secureline.autocrypt import is_automatic, select_autocrypt_header
from sealmail.secureline.keydir import KeyDirectory

log = structlog.get_logger("sealmail.harvest")


def _from_address(msg: Message) -> str:
    parsed = email.utils.getaddresses([str(msg.get("From", ""))])
    return parsed[0][1].strip().lower() if parsed else ""


def harvest(keydir: KeyDirectory, tenant_id: str, raw: bytes) -> int:
    """Store what the message carries; returns how many certificates were stored."""
    msg = BytesParser(policy=email.policy.compat32).parsebytes(raw)
    sender = _from_address(msg)
    if not sender:
        return 0
    stored = 0
    header = select_autocrypt_header([str(v) for v in msg.get_all("Autocrypt", [])], str(msg.get("From", "")))
    if header is not None and is_automatic(msg.get("Auto-Submitted"), msg.get_content_type()):
        log.info("harvest.autocrypt_ignored_automatic")
    elif header is not None:
        try:
            stored += len(
                keydir.upload(tenant_id, header.keydata, "harvest", source="autocrypt", only_address=sender)
            )
        except ValidationFailed:
            log.info("harvest.autocrypt_unusable")
    if msg.get_content_type() == "multipart/signed" and "pkcs7-signature" in str(msg.get("Content-Type", "")):
        payload = msg.get_payload()
        signed = _signed_part(raw, msg.get_boundary())
        for part in payload if isinstance(payload, list) else []:
            if isinstance(part, Message) and part.get_content_type() in (
                "application/pkcs7-signature",
                "application/x-pkcs7-signature",
            ):
                stored += _smime_signers(keydir, tenant_id, part, sender, signed)
    return stored


def _signed_part(raw: bytes, boundary: str | None) -> bytes | None:
    """The first body part of a multipart/signed exactly as sent (RFC 1847 §2.1), or None.

    The bytes between the first delimiter line and the CRLF before the next delimiter: what
    the signature covers.  Read from the raw message, because a parser re-serialises.
    """
    if not boundary:
        return None
    text = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    _, sep, body = text.partition(b"\r\n\r\n")
    if not sep:
        return None
    delimiter = b"--" + boundary.encode("ascii", "replace")
    body = b"\r\n" + body
    start = body.find(b"\r\n" + delimiter + b"\r\n")
    if start < 0:
        return None
    start += len(delimiter) + 4
    end = body.find(b"\r\n" + delimiter, start)
    return body[start:end] if end >= 0 else None


def _verified_capabilities(
    keydir: KeyDirectory, der: bytes, signed: bytes | None, cert: x509.Certificate
) -> cms.Capabilities | None:
    """What ``cert``'s signature advertised, only when that signature verifies over the signed
    part and the certificate chains to a trusted CA; otherwise None (nothing is learned)."""
    verified = verify_detached(der, signed) if signed is not None else None
    if verified is None or verified.signer != cert:
        return None
    info = smime.inspect_certificate(cert.public_bytes(serialization.Encoding.DER))
    chain, _why = keydir.trust.chain_to_anchor(info, now=datetime.now(UTC))
    if chain is None and not keydir.trust.is_explicitly_trusted(info):
        return None
    return verified.capabilities


def _smime_signers(
    keydir: KeyDirectory, tenant_id: str, part: Message, sender: str, signed: bytes | None
) -> int:
    der = part.get_payload(decode=True)
    if not isinstance(der, bytes):
        return 0
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError:
        return 0
    # RFC 8551 §2.5.2: the signed SMIMECapabilities say what the sender's client decrypts
    # (AES-GCM, RSA-OAEP); kept with the certificates so replies can use them (§2.7.1.1).
    # Believed only from a signature that verifies over the signed part, by a certificate
    # that chains to a trusted CA: certificates are public, and a forged attribute list
    # next to someone else's certificate must teach nothing.
    stored = 0
    for cert in certs:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        try:
            capabilities = _verified_capabilities(keydir, der, signed, cert)
            rows = keydir.upload(
                tenant_id, pem, "harvest", source="harvested", only_address=sender, capabilities=capabilities
            )
            stored += len(rows)
        except (ValidationFailed, smime.CertificateError):
            continue  # a CA certificate in the bundle, or one for someone else
    return stored
