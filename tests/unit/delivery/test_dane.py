"""DANE-EE and DANE-TA matching of server certificates (RFC 7672 §3.1)."""

from __future__ import annotations

import datetime

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tests.support.ca import forge_with

from sealmail.net.dane import TlsaRecord, tlsa_association_data, usable_records, verify_tlsa


def _pems(chain: bytes) -> list[bytes]:
    return [b"-----BEGIN" + part for part in chain.split(b"-----BEGIN")[1:]]


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def leaf(ca: trustme.CA) -> bytes:
    return _der(ca.issue_cert("mx1.example.org").cert_chain_pems[0].bytes())


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matching_type", [0, 1, 2])
def test_dane_ee_matches_every_selector_and_matching_type(
    leaf: bytes, selector: int, matching_type: int
) -> None:
    record = TlsaRecord(3, selector, matching_type, tlsa_association_data(leaf, selector, matching_type))
    result = verify_tlsa([record], leaf)
    assert result.matched
    assert result.usage == 3


def test_dane_ee_ignores_name_and_expiry(ca: trustme.CA) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired = _der(
        ca.issue_cert(
            "other.invalid",
            not_before=now - datetime.timedelta(days=9),
            not_after=now - datetime.timedelta(days=1),
        )
        .cert_chain_pems[0]
        .bytes()
    )
    record = TlsaRecord(3, 1, 1, tlsa_association_data(expired, 1, 1))
    assert verify_tlsa([record], expired, hostnames=["mx1.example.org"]).matched


def test_wrong_digest_does_not_match(leaf: bytes) -> None:
    assert not verify_tlsa([TlsaRecord(3, 1, 1, b"\x00" * 32)], leaf).matched


def test_pkix_usages_are_unusable_for_smtp(leaf: bytes) -> None:
    records = [TlsaRecord(u, 1, 1, tlsa_association_data(leaf, 1, 1)) for u in (0, 1)]
    assert usable_records(records) == ()
    result = verify_tlsa(records, leaf)
    assert not result.matched
    assert result.detail == "no usable TLSA records"


def test_dane_ta_matches_issuer_in_chain(ca: trustme.CA) -> None:
    child = ca.create_child_ca()
    issued = child.issue_cert("mx1.example.org")
    leaf = _der(issued.cert_chain_pems[0].bytes())
    chain = [_der(pem.bytes()) for pem in issued.cert_chain_pems]
    ta = _der(child.cert_pem.bytes())
    record = TlsaRecord(2, 1, 1, tlsa_association_data(ta, 1, 1))

    result = verify_tlsa([record], leaf, chain, hostnames=["mx1.example.org"])

    assert result.matched
    assert result.usage == 2


def test_dane_ta_requires_the_mx_name(ca: trustme.CA) -> None:
    issued = ca.issue_cert("other.example.org")
    leaf = _der(issued.cert_chain_pems[0].bytes())
    ta = _der(ca.cert_pem.bytes())
    record = TlsaRecord(2, 0, 0, ta)  # full trust-anchor certificate in the record

    assert not verify_tlsa([record], leaf, hostnames=["mx1.example.org"]).matched
    assert verify_tlsa([record], leaf, hostnames=["other.example.org"]).matched


def test_dane_ta_from_another_ca_does_not_match(ca: trustme.CA, leaf: bytes) -> None:
    stranger = _der(trustme.CA().cert_pem.bytes())
    record = TlsaRecord(2, 0, 0, stranger)
    assert not verify_tlsa([record], leaf, hostnames=["mx1.example.org"]).matched


def test_dane_ta_refuses_a_chain_through_a_certificate_that_is_no_ca(ca: trustme.CA) -> None:
    # The TA is a public CA's intermediate ("2 1 1" on Let's Encrypt's, as many domains
    # publish).  Anyone holds a leaf from it for a domain of their own (CA:FALSE) and can sign
    # with that leaf's key a certificate for the victim's MX: signatures and names chain, and
    # only basicConstraints (RFC 5280 §4.2.1.9, §6.1.4 (k)) says the middle link may not issue.
    child = ca.create_child_ca()
    forged = forge_with(child.issue_cert("attacker.example"), "mx1.example.org")
    chain = [_der(pem) for pem in _pems(forged.chain_pem)]
    record = TlsaRecord(2, 1, 1, tlsa_association_data(_der(child.cert_pem.bytes()), 1, 1))

    result = verify_tlsa([record], forged.der, chain, hostnames=["mx1.example.org"])

    assert [c == forged.der for c in chain] == [True, False, False]  # forgery, signer leaf, TA
    assert not result.matched
    assert "DANE-TA chain rejected" in result.detail
