"""DANE authentication of an SMTP server certificate against TLSA records (RFC 7672).

Pure functions: the caller gathers the TLSA RRset (from a validating resolver) and
the certificates the server presented, and asks whether they match.

Only the two usages RFC 7672 §3.1 recommends for SMTP are honoured:

* DANE-EE (3): the record pins the server's own certificate or public key.  Name
  checks and expiry are deliberately ignored (RFC 7672 §3.1.1): the DNSSEC-signed
  record is the whole authentication.
* DANE-TA (2): the record pins a trust anchor; the server's chain must lead to it
  and the leaf must name the MX host and be within its validity (RFC 7672 §3.1.2,
  §3.2.2).

PKIX-TA (0) and PKIX-EE (1) are unusable for SMTP (RFC 7672 §3.1.3), as are unknown
selectors and matching types (RFC 6698 §4.1).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

USAGE_DANE_TA = 2
USAGE_DANE_EE = 3
SELECTOR_CERT = 0
SELECTOR_SPKI = 1
MATCH_FULL = 0
MATCH_SHA256 = 1
MATCH_SHA512 = 2


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    """One TLSA RR: certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    matching_type: int
    data: bytes

    @property
    def usable(self) -> bool:
        return (
            self.usage in (USAGE_DANE_TA, USAGE_DANE_EE)
            and self.selector in (SELECTOR_CERT, SELECTOR_SPKI)
            and self.matching_type in (MATCH_FULL, MATCH_SHA256, MATCH_SHA512)
        )


@dataclass(frozen=True, slots=True)
class DaneResult:
    """Whether the presented certificates satisfied the TLSA RRset, and why (not)."""

    matched: bool
    usage: int | None = None
    detail: str = ""


def usable_records(records: Sequence[TlsaRecord]) -> tuple[TlsaRecord, ...]:
    """The records an SMTP client may use (RFC 7672 §3.1)."""
    return tuple(record for record in records if record.usable)


def tlsa_association_data(cert_der: bytes, selector: int, matching_type: int) -> bytes:
    """The association data a TLSA record with ``selector``/``matching_type`` holds for a cert.

    Useful both for matching and for publishing records (``3 1 1`` is the usual choice).
    """
    if selector == SELECTOR_CERT:
        selected = cert_der
    elif selector == SELECTOR_SPKI:
        cert = x509.load_der_x509_certificate(cert_der)
        selected = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    else:
        raise ValueError(f"unsupported TLSA selector {selector}")
    if matching_type == MATCH_FULL:
        return selected
    if matching_type == MATCH_SHA256:
        return hashlib.sha256(selected).digest()
    if matching_type == MATCH_SHA512:
        return hashlib.sha512(selected).digest()
    raise ValueError(f"unsupported TLSA matching type {matching_type}")


def _matches(record: TlsaRecord, cert_der: bytes) -> bool:
    try:
        return tlsa_association_data(cert_der, record.selector, record.matching_type) == record.data
    except ValueError:
        return False


def verify_tlsa(
    records: Sequence[TlsaRecord],
    leaf_der: bytes,
    chain_der: Sequence[bytes] = (),
    *,
    hostnames: Sequence[str] = (),
    now: datetime.datetime | None = None,
) -> DaneResult:
    """Check the server's certificates against ``records``.

    ``chain_der`` is the chain as sent by the server, leaf first or not (a leading
    copy of the leaf is skipped).  ``hostnames`` are the reference identifiers for
    DANE-TA (RFC 7672 §3.2.2: the MX hostname, after any CNAME expansion).
    """
    usable = usable_records(records)
    if not usable:
        return DaneResult(False, detail="no usable TLSA records")
    intermediates = [der for der in chain_der if der != leaf_der]

    for record in usable:
        if record.usage == USAGE_DANE_EE and _matches(record, leaf_der):
            return DaneResult(True, USAGE_DANE_EE, "DANE-EE match")

    ta_failures: list[str] = []
    for record in usable:
        if record.usage != USAGE_DANE_TA:
            continue
        anchors = [der for der in intermediates if _matches(record, der)]
        # RFC 7671 §5.2.2: a "2 0 0" record carries the whole trust-anchor
        # certificate, so the server need not send it.
        if record.selector == SELECTOR_CERT and record.matching_type == MATCH_FULL:
            anchors.append(record.data)
        for anchor in anchors:
            problem = _chain_to_anchor(leaf_der, intermediates, anchor, hostnames, now)
            if problem is None:
                return DaneResult(True, USAGE_DANE_TA, "DANE-TA match")
            ta_failures.append(problem)
    if ta_failures:
        return DaneResult(False, USAGE_DANE_TA, f"DANE-TA chain rejected: {ta_failures[0]}")
    return DaneResult(False, detail="certificate matches no TLSA record")


def _chain_to_anchor(
    leaf_der: bytes,
    intermediates: Sequence[bytes],
    anchor_der: bytes,
    hostnames: Sequence[str],
    now: datetime.datetime | None,
) -> str | None:
    """None when ``leaf`` chains to ``anchor`` and names one of ``hostnames``; else why not.

    Deliberately looser than a Web PKI verifier (no CA/B Forum profile checks): SMTP
    certificates often fail those, and RFC 7672 §3.1.2 asks only for a chain to the
    DNSSEC-published anchor, validity dates and the name check of §3.2.  But every
    certificate between the leaf and the anchor must be a CA allowed to issue at its depth
    (RFC 5280 §6.1.4 (k), (l), (n)): otherwise anyone holding a leaf from the anchor's CA
    (a public CA, as a "2 1 1" record often names) signs a certificate for any MX with it.
    """
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        anchor = x509.load_der_x509_certificate(anchor_der)
        pool = [x509.load_der_x509_certificate(der) for der in intermediates]
    except ValueError as exc:
        return f"unparseable certificate: {exc}"
    when = now or datetime.datetime.now(datetime.UTC)
    if not _names_host(leaf, hostnames):
        return "certificate does not name the MX host"
    current, path = leaf, [leaf]
    for _ in range(len(pool) + 1):
        if _issued_by(current, anchor):
            for cert in path:
                if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
                    return "certificate outside its validity period"
            return None
        issuer = next((c for c in pool if c not in path and _issued_by(current, c)), None)
        if issuer is None:
            break
        if not _may_issue(issuer, len(path) - 1):
            return "an intermediate certificate is not a CA that may issue it"
        current = issuer
        path.append(issuer)
    return "certificate does not chain to the TLSA trust anchor"


def _may_issue(cert: x509.Certificate, below: int) -> bool:
    """Whether ``cert`` may sign certificates with ``below`` CA certificates under it (leaf
    not counted): basicConstraints cA (required of issuers), its pathLenConstraint, and
    keyCertSign when keyUsage is present."""
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not basic.ca or (basic.path_length is not None and below > basic.path_length):
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.key_cert_sign)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert == issuer:
        return True  # the anchor may be the leaf's own certificate
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _names_host(cert: x509.Certificate, hostnames: Sequence[str]) -> bool:
    """RFC 7672 §3.2.3 / RFC 6125: DNS-ID match, wildcard only as the whole first label."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    for host in (h.rstrip(".").lower() for h in hostnames):
        for name in names:
            if name == host:
                return True
            if name.startswith("*.") and host.partition(".")[2] == name[2:] and "." in name[2:]:
                return True
    return False
