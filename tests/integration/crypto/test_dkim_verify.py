"""DKIM end to end through real DNS: keys published on a loopback DNS server.

dkimpy verifies through its own DNS code (dnspython's default resolver, pointed at the
loopback server), so the 2048-bit RSA key travels as a TXT record of two 255-byte strings
exactly as it would be published, and ``check_dns`` runs against the same server with
Sealmail's async resolver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dkim
import dns.nameserver
import dns.resolver
import pysequoia
import pytest
from tests.support.dns_server import DnsServer

from sealmail.crypto import pgp
from sealmail.crypto.dkim import (
    DkimKey,
    DkimSigner,
    DnsRecord,
    RecordPurpose,
    check_dns,
    dns_records,
    generate_key,
)
from sealmail.delivery.result import with_trace
from sealmail.delivery.transaction import _dot_stuff
from sealmail.domain.wire import Canonical, canonical_message, crlf_only, prepend_lines
from sealmail.net.dns import Resolver

pytest.importorskip("nacl", reason="dkimpy verifies ed25519 only with PyNaCl: pip install pynacl")

DOMAIN = "clinic.example"
RELAY = "192.0.2.25"


@pytest.fixture(scope="module")
def keys() -> list[DkimKey]:
    return [
        generate_key(DOMAIN, "ed2024", "ed25519-sha256"),
        generate_key(DOMAIN, "rsa2024", "rsa-sha256"),
    ]


@pytest.fixture
def published(keys: list[DkimKey]) -> Iterator[DnsServer]:
    """A loopback DNS server publishing exactly what ``dns_records`` tells the owner to."""
    with DnsServer() as server:
        for record in dns_records(DOMAIN, keys, [RELAY]):
            server.add(record.name, record.type, record.zone_value)
        yield server


@pytest.fixture
def dkimpy_uses(published: DnsServer, monkeypatch: pytest.MonkeyPatch) -> DnsServer:
    """Point dnspython's default resolver, which dkimpy's ``get_txt`` uses, at the server."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(*published.address)]
    monkeypatch.setattr(dns.resolver, "default_resolver", resolver)
    return published


def zone_value(key: DkimKey) -> str:
    return DnsRecord(key.record_name, "TXT", key.public_record(), RecordPurpose.DKIM).zone_value


def multipart_message(size: int) -> bytes:
    line = b"Patient  report line with\ttabs, trailing space and an 8-bit caf\xc3\xa9 \r\n"
    body = line * (size // len(line))
    return (
        (
            "From: Dr. Zoë <zoe@clinic.example>\r\nTo: patient@example.org\r\n"
            "Subject: Résultats\r\n  (folded)\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="xyz"\r\n\r\n'
        ).encode()
        + b"--xyz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body
        + b"--xyz--\r\n"
    )


def test_dual_signed_200_kb_message_verifies_through_loopback_dns(
    keys: list[DkimKey], dkimpy_uses: DnsServer
) -> None:
    message = multipart_message(200_000)
    signed = DkimSigner(keys).sign(message)
    assert dkim.verify(signed, minkey=2048)
    # dkim.verify checks the first signature; check the second explicitly.
    assert dkim.DKIM(signed, minkey=2048).verify(idx=1)
    assert ("ed2024._domainkey.clinic.example.", "TXT") in dkimpy_uses.queries
    assert ("rsa2024._domainkey.clinic.example.", "TXT") in dkimpy_uses.queries


def test_tampered_message_fails_through_loopback_dns(keys: list[DkimKey], dkimpy_uses: DnsServer) -> None:
    signed = DkimSigner(keys).sign(multipart_message(5_000))
    assert not dkim.verify(signed.replace(b"Subject: R", b"Subject: r"))


def test_signature_fails_once_the_published_key_is_replaced(
    keys: list[DkimKey], dkimpy_uses: DnsServer
) -> None:
    signed = DkimSigner(keys[1:]).sign(multipart_message(5_000))
    other = generate_key(DOMAIN, "rsa2024", "rsa-sha256")
    dkimpy_uses.set(keys[1].record_name, "TXT", zone_value(other))
    assert not dkim.verify(signed)


def test_check_dns_passes_for_the_published_records(keys: list[DkimKey], published: DnsServer) -> None:
    resolver = Resolver(nameservers=[published.address], timeout=2)
    results = asyncio.run(check_dns(DOMAIN, keys, resolver, spf_expect=[f"ip4:{RELAY}"]))
    assert [(r.purpose, r.ok) for r in results] == [
        (RecordPurpose.DKIM, True),
        (RecordPurpose.DKIM, True),
        (RecordPurpose.SPF, True),
        (RecordPurpose.DMARC, True),
    ], [r.detail for r in results]


def test_check_dns_reports_a_wrong_key_and_a_failing_server(
    keys: list[DkimKey], published: DnsServer
) -> None:
    published.set(keys[0].record_name, "TXT", zone_value(generate_key(DOMAIN, "x", "ed25519-sha256")))
    published.servfail(f"_dmarc.{DOMAIN}")
    resolver = Resolver(nameservers=[published.address], timeout=2)
    results = asyncio.run(check_dns(DOMAIN, keys, resolver))
    assert [r.ok for r in results] == [False, True, True, False]
    assert "different public key" in results[0].detail
    assert "try again" in results[3].detail


HOSTILE_PGP_SOURCES = {
    "long folded subject": b"Subject: "
    + b"\r\n ".join([b"Lab results for the visit of Monday"] * 60)
    + b"\r\n",
    "non-ASCII header": "Subject: Résultats d'analyse — Zoë\r\nX-Ünïcode: ✓\r\n".encode(),
    "bare LF and CR in the header": b"X-Note: a\nBcc: evil@example.org\rX-B: c\r\n",
    "NUL in a header": b"X-Nul: a\x00b\r\n",
}


@pytest.mark.parametrize("extra", list(HOSTILE_PGP_SOURCES.values()), ids=list(HOSTILE_PGP_SOURCES))
def test_pgp_mime_signed_for_the_wire_verifies_and_matches_the_unmarked_path(
    keys: list[DkimKey], dkimpy_uses: DnsServer, extra: bytes
) -> None:
    """What the PGP worker sends: PGP/MIME, a trace field, then DKIM over the canonical bytes,
    whose ``wire.Canonical`` mark lets dot-stuffing skip its own scan."""
    archive_secret, archive_public = pgp.generate_tenant_key("Archive <archive@clinic.example>")
    _, patient_public = pgp.generate_tenant_key("Patient <patient@example.org>")
    signer_secret, _ = pgp.generate_tenant_key("Zoe <zoe@clinic.example>")
    source = (
        b"From: Dr. Zo\xc3\xab <zoe@clinic.example>\r\nTo: patient@example.org\r\n"
        + extra
        + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + b".leading dot\r\nline two\nno final line end"
    )
    encrypted = pgp.encrypt_pgp_mime(
        source, [patient_public], archive_cert=archive_public, signer_secret=signer_secret
    )
    now = time.time()  # one t= for both paths (dkimpy refuses a t= in the future)
    signer = DkimSigner(keys, clock=lambda: now)
    payload = canonical_message(with_trace("msg_01", encrypted))
    signed = prepend_lines(signer.signature_fields(payload, wire_form=True), payload)

    assert type(signed) is Canonical
    # Byte for byte what the unmarked path (sign, then a full scan before dot-stuffing) sent.
    assert signed == canonical_message(signer.sign(bytes(payload)))
    wire = _dot_stuff(signed)
    assert wire == _dot_stuff(bytes(signed))
    assert crlf_only(wire) and b"\0" not in wire
    # What the receiver reads after removing the dot-stuffing (RFC 5321 §4.5.2).
    received = wire[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
    assert dkim.verify(received, minkey=2048)
    assert dkim.DKIM(received, minkey=2048).verify(idx=1)
    # The encrypted part survived: the archive key opens it and finds the source's body.
    armored = received[received.index(b"-----BEGIN PGP MESSAGE-----") :]
    armored = armored[: armored.index(b"-----END PGP MESSAGE-----") + 25]
    decryptor = pysequoia.Tsk.from_bytes(archive_secret).decryptor()
    assert b"line two" in pysequoia.decrypt(armored, decryptor=decryptor).bytes
