"""SMIMECapabilities harvested from signed mail choose the S/MIME algorithms (RFC 8551 §2.7.1.1).

``openssl cms -sign`` makes the received signed mail (it advertises CBC ciphers only);
``openssl cms -decrypt``/``-cmsout -print`` read what Sealmail delivers.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.integration.secureline.test_signing_and_harvest import deliver, svc  # noqa: F401 — fixture
from tests.support.smime_ca import Issued, SmimeCA

from sealmail.app import Services
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
    assert row["capabilities"] == ""
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
    assert row["capabilities"] == "aes-gcm,rsa-oaep"
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
