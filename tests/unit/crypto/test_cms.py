"""DER helpers and SMIMECapabilities reading (RFC 8551 §2.5.2)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from tests.unit.crypto.test_smime import Authority

from sealmail.crypto import cms, der


@pytest.mark.parametrize(
    "dotted", ["1.2.840.113549.1.9.16.1.23", "2.16.840.1.101.3.4.1.46", "1.3.132.1.11.1"]
)
def test_oids_round_trip(dotted: str) -> None:
    item, end = der.parse(der.oid(dotted))
    assert der.read_oid(item) == dotted and end == len(der.oid(dotted))


def test_long_lengths_round_trip() -> None:
    content = b"x" * 70000
    item, _ = der.parse(der.octet_string(content))
    assert item.content == content


def _signature_with(capabilities: list[bytes]) -> bytes:
    attribute = der.sequence(der.oid(cms.ID_SMIME_CAPABILITIES), der.set_of(der.sequence(*capabilities)))
    signer_info = der.sequence(der.integer(1), der.context(0, attribute), der.octet_string(b"sig"))
    signed_data = der.sequence(
        der.integer(1), der.set_of(), der.sequence(der.oid(cms.ID_DATA)), der.set_of(signer_info)
    )
    return der.sequence(der.oid(cms.ID_SIGNED_DATA), der.context(0, signed_data))


def test_gcm_and_oaep_are_recognised() -> None:
    caps = [
        der.sequence(der.oid(cms.AES256_GCM)),
        der.sequence(der.oid(cms.AES256_CBC)),
        der.sequence(der.oid(cms.RSAES_OAEP)),
    ]
    assert cms.capabilities_from_signature(_signature_with(caps)) == cms.Capabilities(True, True)
    assert cms.capabilities_from_signature(_signature_with(caps[1:2])) == cms.Capabilities(False, False)


def test_cryptography_signatures_advertise_cbc_only() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = Authority.create().issue(key=key)
    signature = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(b"hi")
        .add_signer(cert, key, hashes.SHA256())
        .sign(Encoding.DER, [])
    )
    assert cms.capabilities_from_signature(signature) == cms.Capabilities()


def test_capabilities_text_round_trip() -> None:
    for value in (cms.Capabilities(), cms.Capabilities(True, False), cms.Capabilities(True, True)):
        assert cms.Capabilities.from_text(value.to_text()) == value
    assert cms.Capabilities.from_text(None) == cms.Capabilities()
