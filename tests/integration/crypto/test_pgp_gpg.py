"""PGP/MIME output checked independently with GnuPG, and certificate inspection of gpg keys.

GnuPG 2.2 is the reader we must not break (docs/research/encryption.md): it decrypts what
Sealmail sends, verifies the tenant signature, and its keys are the inspection fixtures.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.gpg import GPG, GnuPG

from sealmail.crypto import pgp
from sealmail.domain.addresses import parse_address
from sealmail.domain.message import Attachment, Draft, build

pytestmark = pytest.mark.skipif(GPG is None, reason="gpg (GnuPG) is not installed; run `make system-deps`")

PATIENT = "pat@example.net"
RSA_USER = "rita@example.net"


@dataclass
class Keys:
    recipient_home: GnuPG  # holds Pat's and Rita's secret keys
    archive_home: GnuPG  # holds only the archive secret key
    pat: bytes
    rita_rsa: bytes
    archive: bytes
    sign_only: bytes
    expired: bytes
    revoked: bytes
    tenant_secret: bytes
    tenant_public: bytes


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    recipient = GnuPG(tmp_path_factory.mktemp("gpg-recipient"))
    archive = GnuPG(tmp_path_factory.mktemp("gpg-archive"))
    others = GnuPG(tmp_path_factory.mktemp("gpg-others"))
    try:
        pat = recipient.gen_key(f"Pat Recipient <{PATIENT}>")
        rita = recipient.gen_key(f"Rita RSA <{RSA_USER}>", "rsa3072", "sign", "never")
        recipient.add_subkey(rita, "rsa3072", "encr")
        arch = archive.gen_key("Clinic Archive <archive@clinic.example>")
        sign_only = others.gen_key("Sign Only <signonly@example.net>", "ed25519", "sign", "never")
        # A key that expired long ago: created on 2020-01-01 with a one-day lifetime.
        expired = others.gen_key(
            "Old Key <old@example.net>", "futuredefault", "default", "1d", faked_time="20200101T000000"
        )
        revoked = others.gen_key("Gone <gone@example.net>")
        others.import_keys(others.revocation_certificate(revoked))
        tenant_secret, tenant_public = pgp.generate_tenant_key("Clinic Tenant <tenant@clinic.example>")
        recipient.import_keys(tenant_public)
        yield Keys(
            recipient_home=recipient,
            archive_home=archive,
            pat=recipient.export(pat),
            rita_rsa=recipient.export(rita, armor=False),
            archive=archive.export(arch),
            sign_only=others.export(sign_only),
            expired=others.export(expired),
            revoked=others.export(revoked),
            tenant_secret=tenant_secret,
            tenant_public=tenant_public,
        )
    finally:
        for home in (recipient, archive, others):
            home.close()


def _stored_message() -> bytes:
    """A message as Sealmail stores it: multipart/mixed(alternative(text, html), attachment)."""
    draft = Draft(
        sender=parse_address("Dr Who <dr@clinic.example>", "from"),
        to=(parse_address(f"Pat <{PATIENT}>", "to"),),
        subject="Your lab results: HbA1c 7.9%",
        text="Dear Pat,\nyour results are attached.\n",
        html="<p>Dear Pat,<br>your results are attached.</p>",
        attachments=(Attachment("results.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(range(256)) * 8),),
    )
    return build(draft, "clinic.example").raw


def _entity(data: bytes) -> tuple[list[bytes], bytes]:
    """(header lines with folding undone, body) of a MIME entity, CRLF-normalized."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    return head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t").split(b"\r\n"), body


def _armored_part(outer: bytes) -> bytes:
    msg = email.message_from_bytes(outer, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/encrypted"
    version, encrypted = msg.get_payload()
    assert version.get_payload().strip() == "Version: 1"
    payload = encrypted.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def test_gpg_decrypts_the_original_body_entity_with_protected_headers(keys: Keys) -> None:
    original = _stored_message()
    out = pgp.encrypt_pgp_mime(original, [keys.pat], archive_cert=keys.archive)
    armored = _armored_part(out)

    result = keys.recipient_home.decrypt(armored)

    assert result.returncode == 0, result.stderr
    assert "[GNUPG:] DECRYPTION_OKAY" in result.stderr
    inner_headers, inner_body = _entity(result.stdout)
    orig_headers, orig_body = _entity(original)
    assert inner_body == orig_body
    orig_content = [h for h in orig_headers if h.lower().startswith(b"content-")]
    inner_content = [
        h.replace(b'; hp="cipher"; protected-headers="v1"', b"")
        for h in inner_headers
        if h.lower().startswith(b"content-")
    ]
    assert inner_content == orig_content
    assert any(
        h.endswith(b'; hp="cipher"; protected-headers="v1"')
        for h in inner_headers
        if h.startswith(b"Content-Type:")
    )
    assert b"Subject: Your lab results: HbA1c 7.9%" in inner_headers
    assert b"Your lab results" not in out
    # RFC 9788 §2.2: the payload records what the outer header section showed.
    assert b"HP-Outer: Subject: [...]" in inner_headers
    outer = email.message_from_bytes(out, policy=email.policy.compat32)
    assert outer["Subject"] == "[...]"
    assert f"HP-Outer: Message-ID: {outer['Message-ID']}".encode() in inner_headers
    assert f"HP-Outer: From: {outer['From']}".encode() in inner_headers


def test_archive_key_alone_decrypts_the_same_message(keys: Keys) -> None:
    out = pgp.encrypt_pgp_mime(_stored_message(), [keys.pat], archive_cert=keys.archive)

    result = keys.archive_home.decrypt(_armored_part(out))

    assert result.returncode == 0, result.stderr
    assert b"Subject: Your lab results" in result.stdout


def test_rsa_3072_recipient_decrypts(keys: Keys) -> None:
    info = pgp.inspect_cert(keys.rita_rsa, datetime.now(UTC))
    assert info.algorithm.startswith("RSA-3072")
    assert info.usable_for(RSA_USER, datetime.now(UTC)) == (True, "usable")

    out = pgp.encrypt_pgp_mime(_stored_message(), [keys.rita_rsa], archive_cert=None)
    result = keys.recipient_home.decrypt(_armored_part(out))

    assert result.returncode == 0, result.stderr
    assert "[GNUPG:] DECRYPTION_OKAY" in result.stderr


def test_tenant_signature_is_a_good_signature_for_gpg(keys: Keys) -> None:
    signer = pgp.load_signing_key(keys.tenant_secret)
    out = pgp.encrypt_pgp_mime(
        _stored_message(), [pgp.load_cert(keys.pat)], archive_cert=keys.archive, signer_secret=signer
    )

    result = keys.recipient_home.decrypt(_armored_part(out))

    assert result.returncode == 0, result.stderr
    assert "[GNUPG:] GOODSIG" in result.stderr
    assert 'Good signature from "Clinic Tenant <tenant@clinic.example>"' in result.stderr


def test_mixed_recipients_get_seipd_v1_that_gpg_reads_with_the_tenant_archive_key(
    keys: Keys, tmp_path: Path
) -> None:
    # Pat's gpg 2.2 key advertises only SEIPDv1, so the tenant key's SEIPDv2 flag must not
    # win: RFC 9580 §5.13.2 lets v2 be used only when every recipient supports it.
    out = pgp.encrypt_pgp_mime(_stored_message(), [keys.pat], archive_cert=keys.tenant_public)
    armored = _armored_part(out)
    assert pgp.seipd_version(armored) == 1

    home = GnuPG(tmp_path / "g")
    try:
        home.import_keys(keys.tenant_secret)
        result = home.decrypt(armored)
    finally:
        home.close()
    assert result.returncode == 0, result.stderr


def test_seipd_v2_only_when_every_certificate_advertises_it(keys: Keys) -> None:
    _, other_public = pgp.generate_tenant_key("Other Tenant <other@clinic.example>")
    assert pgp.inspect_cert(other_public, datetime.now(UTC)).supports_seipd_v2
    assert not pgp.inspect_cert(keys.pat, datetime.now(UTC)).supports_seipd_v2

    both_v2 = pgp.encrypt_pgp_mime(_stored_message(), [other_public], archive_cert=keys.tenant_public)

    assert pgp.seipd_version(_armored_part(both_v2)) == 2


def test_generated_tenant_key_is_v4_and_never_v6(keys: Keys) -> None:
    packets = keys.recipient_home.list_packets(keys.tenant_public)

    assert "version 4" in packets
    assert "version 6" not in packets
    assert pgp.inspect_cert(keys.tenant_public, datetime.now(UTC)).version == 4


def test_expired_key_is_reported_with_its_date_and_refused_for_encryption(keys: Keys) -> None:
    created_day = datetime(2020, 1, 1, 12, tzinfo=UTC)
    info = pgp.inspect_cert(keys.expired, created_day)
    assert info.expires == datetime(2020, 1, 2, tzinfo=UTC)
    assert info.usable_for("old@example.net", created_day) == (True, "usable")

    later = created_day + timedelta(days=2)
    assert pgp.inspect_cert(keys.expired, later).can_encrypt is False
    assert info.usable_for("old@example.net", later) == (False, "expired on 2020-01-02")
    # pysequoia alone would fall back to the expired subkey; our interface must not.
    with pytest.raises(pgp.UnusableCertificate, match="expired on 2020-01-02"):
        pgp.encrypt_pgp_mime(_stored_message(), [keys.expired], archive_cert=None)


def test_revoked_key_is_not_usable(keys: Keys) -> None:
    now = datetime.now(UTC)
    info = pgp.inspect_cert(keys.revoked, now)

    assert info.revoked is True
    assert info.usable_for("gone@example.net", now) == (False, "revoked")


def test_sign_only_key_has_no_encryption_capable_subkey(keys: Keys) -> None:
    now = datetime.now(UTC)
    info = pgp.inspect_cert(keys.sign_only, now)

    assert info.can_encrypt is False
    assert info.usable_for("signonly@example.net", now) == (False, "no encryption-capable subkey")


def test_user_id_must_match_the_address(keys: Keys) -> None:
    now = datetime.now(UTC)
    info = pgp.inspect_cert(keys.pat, now)

    assert info.emails == (PATIENT,)
    assert info.usable_for("PAT@Example.NET", now) == (True, "usable")
    assert info.usable_for("someone@example.net", now) == (False, "no user id for <someone@example.net>")


def test_key_facts_match_gpg(keys: Keys) -> None:
    info = pgp.inspect_cert(keys.pat, datetime.now(UTC))
    fingerprint = keys.recipient_home.fingerprint(f"Pat Recipient <{PATIENT}>")

    assert info.fingerprint == fingerprint
    assert info.key_id == fingerprint[-16:]
    assert info.expires is None
    assert info.algorithm == "Ed25519 (v4); encryption: Cv25519"
