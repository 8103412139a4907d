"""SMIMECapabilities harvested from signed mail choose the S/MIME algorithms (RFC 8551 §2.7.1.1).

``openssl cms -sign`` makes the received signed mail (it advertises CBC ciphers only);
``openssl cms -decrypt``/``-cmsout -print`` read what Sealmail delivers.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.integration.secureline.test_signing_and_harvest import deliver, svc  # noqa: F401 — fixture
from tests.support.smime_ca import Issued, SmimeCA

from sealmail.app import Services
from sealmail.crypto import cms, der
from sealmail.crypto.cms import Capabilities
from sealmail.intake.api.app import create_api
from sealmail.secureline.harvest import harvest

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _openssl(*args: str | Path, input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["openssl", *map(str, args)], input=input_bytes, capture_output=True, timeout=60, check=False
    )


def _send_and_open(services: Services, mx: MxFarm, tenant_key: str, party: Issued, tmp_path: Path) -> str:
    client = TestClient(create_api(services), raise_server_exceptions=False)
    sent = client.post(
        "/v1/messages",
        headers={"Authorization": f"Bearer {tenant_key}"},
        json={"from": "results@clinic.example", "to": ["lab@p.example"], "subject": "R", "text": "ok"},
    )
    assert sent.status_code == 202, sent.text
    deliver(services)
    [got] = mx.sinks["127.0.0.2"].wait_for(1)
    path = tmp_path / "got.eml"
    path.write_bytes(got.data)
    opened = _openssl("cms", "-decrypt", "-in", path, "-recip", party.cert_path, "-inkey", party.key_path)
    assert opened.returncode == 0, opened.stderr.decode()
    printed = _openssl("cms", "-cmsout", "-print", "-in", path)
    assert printed.returncode == 0, printed.stderr.decode()
    return printed.stdout.decode()


def _tenant_and_lab(services: Services) -> tuple[TenantFixture, Issued]:
    ca: SmimeCA = services.smime_ca  # type: ignore[attr-defined]
    return make_tenant(services), ca.issue("lab@p.example")


def test_openssl_signed_mail_harvests_certificate_and_capabilities(
    svc: Services,  # noqa: F811
    mx: MxFarm,
    tmp_path: Path,
) -> None:
    tenant, lab = _tenant_and_lab(svc)
    signed = _openssl(
        "cms",
        "-sign",
        "-signer",
        lab.cert_path,
        "-inkey",
        lab.key_path,
        input_bytes=b"Content-Type: text/plain\r\n\r\nresults attached\r\n",
    )
    assert signed.returncode == 0, signed.stderr.decode()
    raw = b"From: lab@p.example\r\nTo: results@clinic.example\r\nSubject: x\r\n" + signed.stdout
    assert harvest(svc.keydir, tenant.id, raw) == 1
    [row] = svc.keydir.list(tenant.id, address="lab@p.example")
    # OpenSSL's SMIMECapabilities list CBC ciphers only: learned, but nothing beyond the default.
    assert row.capabilities == ""
    text = _send_and_open(svc, mx, tenant.api_key, lab, tmp_path)
    assert "pkcs7-envelopedData" in text and "aes-256-cbc" in text and "rsaEncryption" in text


def test_advertised_gcm_and_oaep_are_used_for_delivery(
    svc: Services,  # noqa: F811
    mx: MxFarm,
    tmp_path: Path,
) -> None:
    tenant, lab = _tenant_and_lab(svc)
    caps = Capabilities(aes_gcm=True, rsa_oaep=True)
    svc.keydir.upload(tenant.id, lab.cert_pem, "harvest", source="harvested", capabilities=caps)
    # A later plain upload of the same certificate keeps what was learned.
    svc.keydir.upload(tenant.id, lab.cert_pem, "test")
    [row] = svc.keydir.list(tenant.id, address="lab@p.example")
    assert row.capabilities == "aes-gcm,rsa-oaep"
    text = _send_and_open(svc, mx, tenant.api_key, lab, tmp_path)
    assert "id-smime-ct-authEnvelopedData" in text
    assert "aes-256-gcm" in text and "rsaesOaep" in text


def test_the_tenant_identity_gets_an_archive_copy_of_smime_mail(
    svc: Services,  # noqa: F811
    mx: MxFarm,
    tmp_path: Path,
) -> None:
    tenant, lab = _tenant_and_lab(svc)
    ca: SmimeCA = svc.smime_ca  # type: ignore[attr-defined]
    own = ca.issue("results@clinic.example")
    svc.identities.set_smime_identity(tenant.id, own.cert_pem, own.key_path.read_bytes(), "test")
    svc.keydir.upload(tenant.id, lab.cert_pem, "test")
    _send_and_open(svc, mx, tenant.api_key, lab, tmp_path)
    # The same envelope opens with the tenant's own identity key (its archive copy), unsigned mail too.
    opened = _openssl(
        "cms", "-decrypt", "-in", tmp_path / "got.eml", "-recip", own.cert_path, "-inkey", own.key_path
    )
    assert opened.returncode == 0, opened.stderr.decode()
    assert b"Subject: R" in opened.stdout


# -- only a verified signature teaches anything (issue 12) -------------------------------------

_CONTENT = b"Content-Type: text/plain\r\n\r\nresults attached\r\n"
_CONTENT_TYPE_ATTR, _MESSAGE_DIGEST_ATTR = "1.2.840.113549.1.9.3", "1.2.840.113549.1.9.4"
_SHA256, _SHA256_RSA = "2.16.840.1.101.3.4.2.1", "1.2.840.113549.1.1.11"


def _signed_mail(named: Issued, key: rsa.RSAPrivateKey, content: bytes = _CONTENT) -> bytes:
    """A multipart/signed mail from lab@p.example advertising AES-GCM and RSA-OAEP.

    Built by hand so the SMIMECapabilities can say GCM (openssl's list never does); the
    SignerInfo names ``named`` and the signature is made with ``key`` — the holder's own key
    for a genuine mail, someone else's for a forgery.
    """
    caps = der.sequence(*(der.sequence(der.oid(o)) for o in (cms.AES256_GCM, cms.RSAES_OAEP, cms.AES256_CBC)))
    attrs = [
        der.sequence(der.oid(_CONTENT_TYPE_ATTR), der.set_of(der.oid(cms.ID_DATA))),
        der.sequence(
            der.oid(_MESSAGE_DIGEST_ATTR), der.set_of(der.octet_string(hashlib.sha256(_CONTENT).digest()))
        ),
        der.sequence(der.oid(cms.ID_SMIME_CAPABILITIES), der.set_of(caps)),
    ]
    signed_attrs = der.set_of(*attrs)
    signature = key.sign(signed_attrs, padding.PKCS1v15(), hashes.SHA256())
    sid = der.sequence(named.cert.issuer.public_bytes(), der.integer(named.cert.serial_number))
    signer_info = der.sequence(
        der.integer(1),
        sid,
        der.sequence(der.oid(_SHA256)),
        der.context(0, der.parse(signed_attrs)[0].content),  # [0] IMPLICIT: the SET's content
        der.sequence(der.oid(_SHA256_RSA)),
        der.octet_string(signature),
    )
    signed_data = der.sequence(
        der.integer(1),
        der.set_of(der.sequence(der.oid(_SHA256))),
        der.sequence(der.oid(cms.ID_DATA)),
        der.context(0, named.cert.public_bytes(serialization.Encoding.DER)),
        der.set_of(signer_info),
    )
    p7s = der.sequence(der.oid(cms.ID_SIGNED_DATA), der.context(0, signed_data))
    b64 = base64.encodebytes(p7s).replace(b"\n", b"\r\n")
    return (
        b"From: lab@p.example\r\nTo: results@clinic.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;'
        b' boundary="b1"\r\n\r\n--b1\r\n' + content + b"\r\n--b1\r\n"
        b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"\r\n--b1--\r\n"
    )


def _openssl_verifies(raw: bytes, ca_path: Path, tmp_path: Path) -> bool:
    path = tmp_path / "signed.eml"
    path.write_bytes(raw)
    return _openssl("cms", "-verify", "-inform", "SMIME", "-in", path, "-CAfile", ca_path).returncode == 0


def test_a_verified_signature_teaches_gcm_and_oaep(svc: Services, tmp_path: Path) -> None:  # noqa: F811
    tenant, lab = _tenant_and_lab(svc)
    ca: SmimeCA = svc.smime_ca  # type: ignore[attr-defined]
    raw = _signed_mail(lab, lab.key)
    assert _openssl_verifies(raw, ca.ca_path, tmp_path)  # independent check: the mail is genuine

    assert harvest(svc.keydir, tenant.id, raw) == 1
    [row] = svc.keydir.list(tenant.id, address="lab@p.example")
    assert row.capabilities == "aes-gcm,rsa-oaep"


def test_a_forged_signature_stores_no_capabilities(svc: Services, tmp_path: Path) -> None:  # noqa: F811
    tenant, lab = _tenant_and_lab(svc)
    ca: SmimeCA = svc.smime_ca  # type: ignore[attr-defined]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = _signed_mail(lab, forger)  # names lab's (public) certificate, signed by someone else
    assert not _openssl_verifies(forged, ca.ca_path, tmp_path)

    harvest(svc.keydir, tenant.id, forged)
    rows = svc.keydir.list(tenant.id, address="lab@p.example")
    assert all(not r.capabilities for r in rows), rows

    # Genuine signature, but the signed part was changed in transit: nothing learned either.
    tampered = _signed_mail(lab, lab.key).replace(b"results attached", b"results attacked")
    assert not _openssl_verifies(tampered, ca.ca_path, tmp_path)
    harvest(svc.keydir, tenant.id, tampered)
    rows = svc.keydir.list(tenant.id, address="lab@p.example")
    assert all(not r.capabilities for r in rows), rows


def test_a_signature_from_an_untrusted_ca_stores_no_capabilities(
    svc: Services,  # noqa: F811
    tmp_path: Path,
) -> None:
    tenant = make_tenant(svc)
    stranger_ca = SmimeCA(tmp_path / "stranger")
    lab = stranger_ca.issue("lab@p.example")
    raw = _signed_mail(lab, lab.key)
    assert _openssl_verifies(raw, stranger_ca.ca_path, tmp_path)  # valid, just not trusted here

    harvest(svc.keydir, tenant.id, raw)
    rows = svc.keydir.list(tenant.id, address="lab@p.example")
    assert all(not r.capabilities for r in rows), rows
