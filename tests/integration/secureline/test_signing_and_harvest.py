"""Optional signing with the tenant's keys, and certificates harvested from received mail."""

from __future__ import annotations

import asyncio
import base64
import email
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.gpg import GnuPG
from tests.support.smime_ca import SmimeCA
from typer.testing import CliRunner

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.cli import app as cli_app
from sealmail.crypto import smime
from sealmail.intake.api.app import create_api
from sealmail.secureline.harvest import harvest

BODY = "Your lab results are attached to this secure message."


@pytest.fixture
def svc(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Services]:
    mx.start({"127.0.0.2": {"cert": ca.issue("mx.p.example")}})
    dns.add("p.example", "MX", "10 mx.p.example.")
    dns.add("mx.p.example", "A", "127.0.0.2")
    smime_ca = SmimeCA(tmp_path / "smime")
    settings = make_settings(
        tmp_path,
        db_url,
        outbound_mode="mx",
        dns_nameservers=[f"{dns.address[0]}:{dns.address[1]}"],
        mx_port=mx.port,
        tls_ca_file=ca.ca_file,
        mta_sts_enabled=False,
        key_discovery="off",
        smime_trust_file=smime_ca.ca_path,
    )
    services = build_services(settings)
    services.smime_ca = smime_ca  # type: ignore[attr-defined]  # test convenience
    yield services
    services.close()


def cli_env(services: Services) -> dict[str, str]:
    return {
        "SEALMAIL_HOME": str(services.settings.home),
        "SEALMAIL_DATABASE_URL": services.settings.resolved_database_url,
    }


def deliver(services: Services) -> None:
    async def run() -> None:
        transport = build_transport(services.settings)
        try:
            await build_worker(services, transport).run_until_idle(timeout=60)
        finally:
            await transport.close()

    asyncio.run(run())


@pytest.mark.hipaa("164.312(e)(1)")
def test_pgp_mime_is_signed_with_the_tenant_key_when_asked(svc: Services, mx: MxFarm, tmp_path: Path) -> None:
    tenant = make_tenant(svc)
    client = TestClient(create_api(svc), raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Pat <pat@p.example>")
        svc.keydir.upload(tenant.id, gpg.export(fpr), "test")
        assert (
            client.patch("/v1/tenant/policy", json={"secureline": {"sign_pgp": True}}, headers=h).status_code
            == 200
        )
        archive = client.get("/v1/tenant/archive-key", headers=h).json()
        gpg.import_keys(archive["certificate"].encode())
        client.post(
            "/v1/messages",
            headers=h,
            json={
                "from": "results@clinic.example",
                "to": ["pat@p.example"],
                "subject": "Results",
                "text": BODY,
                "stream": "phi",
            },
        )
        deliver(svc)
        [got] = mx.sinks["127.0.0.2"].wait_for(1)
        armored = email.message_from_bytes(got.data).get_payload()[1].get_payload(decode=True)
        # Issue 12.2: the signing certificate is the sender's own, published by the CLI.
        signing = CliRunner().invoke(
            cli_app,
            ["keys", "signing-key", "results@clinic.example", "--tenant", tenant.id],
            env=cli_env(svc),
        )
        assert signing.exit_code == 0, signing.output
        gpg.import_keys(signing.stdout.encode())
        result = gpg.decrypt(armored)
        assert BODY in result.stdout.decode()
        assert "Good signature" in result.stderr
        # gpg names the signer by its primary user id: it must be the From address, not
        # the archive key's archive@sealmail.invalid, or readers flag a sender mismatch.
        [good] = [line for line in result.stderr.splitlines() if line.startswith("[GNUPG:] GOODSIG ")]
        assert good.endswith("<results@clinic.example>"), good
        signer_fpr = next(
            line.split()[2] for line in result.stderr.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")
        )
        assert signer_fpr != archive["fingerprint"]
    finally:
        gpg.close()


def test_smime_is_signed_then_encrypted_with_the_tenant_identity(
    svc: Services, mx: MxFarm, tmp_path: Path
) -> None:
    tenant = make_tenant(svc)
    client = TestClient(create_api(svc), raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    ca: SmimeCA = svc.smime_ca  # type: ignore[attr-defined]
    recipient = ca.issue("sam@p.example")
    signer = ca.issue("results@clinic.example")
    svc.keydir.upload(tenant.id, recipient.cert_pem, "test")
    key_pem = signer.key_path.read_text()
    put = client.put(
        "/v1/tenant/smime-identity",
        headers=h,
        json={"certificate": signer.cert_pem.decode(), "private_key": key_pem},
    )
    assert put.status_code == 200, put.text
    assert "private_key" not in put.text and "BEGIN PRIVATE KEY" not in put.text
    client.patch("/v1/tenant/policy", json={"secureline": {"sign_smime": True}}, headers=h)
    client.post(
        "/v1/messages",
        headers=h,
        json={
            "from": "results@clinic.example",
            "to": ["sam@p.example"],
            "subject": "Results",
            "text": BODY,
            "stream": "phi",
        },
    )
    deliver(svc)
    [got] = mx.sinks["127.0.0.2"].wait_for(1)
    enc = tmp_path / "enc.eml"
    enc.write_bytes(got.data)
    signed = subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-in",
            str(enc),
            "-recip",
            str(recipient.cert_path),
            "-inkey",
            str(recipient.key_path),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    # RFC 9788: the envelope holds the multipart/signed entity whose signed part carries the
    # protected header fields; the outer Subject is the placeholder.
    assert b"Subject: [...]" in got.data
    assert signed.lstrip().lower().startswith(b"content-type: multipart/signed")
    inner = tmp_path / "signed.eml"
    inner.write_bytes(signed)
    verified = subprocess.run(
        ["openssl", "smime", "-verify", "-in", str(inner), "-CAfile", str(ca.ca_path)],
        capture_output=True,
        timeout=30,
    )
    assert verified.returncode == 0, verified.stderr
    assert BODY in verified.stdout.decode()
    assert 'hp="cipher"' in verified.stdout.decode()
    assert "HP-Outer: Subject: [...]" in verified.stdout.decode()


def test_bad_smime_identity_is_a_422(svc: Services) -> None:
    tenant = make_tenant(svc)
    client = TestClient(create_api(svc), raise_server_exceptions=False)
    resp = client.put(
        "/v1/tenant/smime-identity",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        json={"certificate": "not a cert", "private_key": "nope"},
    )
    assert resp.status_code == 422


def test_autocrypt_header_in_received_mail_is_harvested_for_the_sender(svc: Services, tmp_path: Path) -> None:
    tenant = make_tenant(svc)
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Pat <pat@p.example>")
        keydata = base64.b64encode(gpg.export(fpr, armor=False)).decode()
        folded = "\r\n ".join(textwrap.wrap(keydata, 72))
        raw = (
            f"From: Pat <pat@p.example>\r\nTo: results@clinic.example\r\nSubject: hi\r\n"
            f"Autocrypt: addr=pat@p.example; keydata=\r\n {folded}\r\n\r\nhello\r\n"
        ).encode()
        assert harvest(svc.keydir, tenant.id, raw) == 1
        [row] = svc.keydir.list(tenant.id, address="pat@p.example")
        assert (row.source, row.fingerprint) == ("autocrypt", fpr)
        # A header naming someone else is ignored (Autocrypt Level 1: addr must match From).
        other = raw.replace(b"From: Pat <pat@p.example>", b"From: Eve <eve@p.example>")
        assert harvest(svc.keydir, tenant.id, other) == 0
    finally:
        gpg.close()


def test_autocrypt_header_in_an_auto_reply_is_not_harvested(svc: Services, tmp_path: Path) -> None:
    tenant = make_tenant(svc)
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Pat <pat@p.example>")
        keydata = base64.b64encode(gpg.export(fpr, armor=False)).decode()
        folded = "\r\n ".join(textwrap.wrap(keydata, 72))
        raw = (
            f"From: Pat <pat@p.example>\r\nTo: results@clinic.example\r\nSubject: Out of office\r\n"
            f"Auto-Submitted: auto-replied\r\n"
            f"Autocrypt: addr=pat@p.example; keydata=\r\n {folded}\r\n\r\naway\r\n"
        ).encode()
        # Autocrypt Level 1 §2.3 / RFC 3834: an autoresponder does not speak for the person.
        assert harvest(svc.keydir, tenant.id, raw) == 0
        assert svc.keydir.list(tenant.id, address="pat@p.example") == []
    finally:
        gpg.close()


def test_smime_signer_certificate_in_received_mail_is_harvested(svc: Services) -> None:
    tenant = make_tenant(svc)
    ca: SmimeCA = svc.smime_ca  # type: ignore[attr-defined]
    partner = ca.issue("lab@p.example")
    identity = smime.load_tenant_identity(partner.cert_pem, partner.key_path.read_bytes())
    signed = smime.sign_smime(
        b"From: lab@p.example\r\nTo: results@clinic.example\r\nSubject: x\r\n\r\nok\r\n",
        identity.certificate,
        identity.private_key,
    )
    assert harvest(svc.keydir, tenant.id, signed) == 1
    [row] = svc.keydir.list(tenant.id, address="lab@p.example")
    assert row.kind == "smime" and row.source == "harvested"
