"""Harvesting recipients' certificates from mail the SMTP gateway receives (tenant opt-in).

Two sources, both about the *sender* of the received mail: an Autocrypt header (Level 1)
whose ``addr`` matches the From address, and the signer certificates of an S/MIME
``multipart/signed`` message.  Harvested certificates are stored with source
``autocrypt``/``harvested``; S/MIME ones are used only if they chain to a trusted CA (the
tenant vouches for nothing by harvesting), and an OpenPGP one only for the From address.
A signature's SMIMECapabilities (RFC 8551 §2.5.2) are stored with its certificates; mail a
machine sent (``Auto-Submitted``, RFC 3834) updates no Autocrypt state (Level 1 §2.3).
"""

from __future__ import annotations

import email.policy
import email.utils
from email.message import Message
from email.parser import BytesParser

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from sealmail.crypto.cms import capabilities_from_signature
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
        for part in payload if isinstance(payload, list) else []:
            if isinstance(part, Message) and part.get_content_type() in (
                "application/pkcs7-signature",
                "application/x-pkcs7-signature",
            ):
                stored += _smime_signers(keydir, tenant_id, part, sender)
    return stored


def _smime_signers(keydir: KeyDirectory, tenant_id: str, part: Message, sender: str = "") -> int:
    der = part.get_payload(decode=True)
    if not isinstance(der, bytes):
        return 0
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError:
        return 0
    # RFC 8551 §2.5.2: the signed SMIMECapabilities say what the sender's client decrypts
    # (AES-GCM, RSA-OAEP); kept with the certificates so replies can use them (§2.7.1.1).
    # The signature is not verified here: a forged attribute can only ask for GCM/OAEP (a
    # recipient that cannot read them would see an unreadable message), never weaken below
    # the CBC + PKCS#1 v1.5 default.
    capabilities = capabilities_from_signature(der)
    stored = 0
    for cert in certs:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        try:
            rows = keydir.upload(
                tenant_id, pem, "harvest", source="harvested", only_address=sender, capabilities=capabilities
            )
            stored += len(rows)
        except ValidationFailed:
            continue  # a CA certificate in the bundle, or one for someone else
    return stored
