"""One message, four recipients with four capabilities, four methods — checked by outside tools.

OpenPGP is decrypted by GnuPG, S/MIME by ``openssl cms``, every DKIM signature is verified
by dkimpy resolving keys through the loopback DNS server, and the portal notice is checked
to carry no PHI.
"""

from __future__ import annotations

import asyncio
import email
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dkim as dkimpy
import dns.nameserver as dns_nameserver
import dns.resolver as dns_resolver
import pytest
from tests.conftest import make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.gpg import GnuPG
from tests.support.smime_ca import SmimeCA

from sealmail.app import build_services, build_transport, build_worker
from sealmail.crypto.dkim import dns_records
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn

pytestmark = [
    pytest.mark.skipif(shutil.which("gpg") is None, reason="GnuPG (gpg) is not installed"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

SUBJECT = "Your biopsy results are ready"
BODY = "Dear Pat, the pathology report shows benign tissue."


@pytest.fixture
def gpg(tmp_path: Path) -> Iterator[GnuPG]:
    g = GnuPG(tmp_path / "gnupg")
    yield g
    g.close()


@pytest.mark.hipaa("164.312(e)(1)")
def test_four_recipients_get_pgp_smime_tls_and_portal_each_recorded(
    tmp_path: Path,
    db_url: str,
    dns: DnsServer,
    ca: TestCA,
    mx: MxFarm,
    gpg: GnuPG,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sinks = mx.start(
        {
            "127.0.0.2": {"cert": ca.issue("mx.pgp.example")},
            "127.0.0.3": {"cert": ca.issue("mx.smime.example")},
            "127.0.0.4": {"cert": ca.issue("mx.tls.example")},
            "127.0.0.5": {},  # offers no STARTTLS
        }
    )
    for i, name in enumerate(["pgp", "smime", "tls", "plain"], start=2):
        dns.add(f"{name}.example", "MX", f"10 mx.{name}.example.")
        dns.add(f"mx.{name}.example", "A", f"127.0.0.{i}")
    smime_ca = SmimeCA(tmp_path / "smime")
    settings = make_settings(
        tmp_path,
        db_url,
        outbound_mode="mx",
        dns_nameservers=[f"{dns.address[0]}:{dns.address[1]}"],
        mx_port=mx.port,
        tls_ca_file=ca.ca_file,
        mta_sts_enabled=False,
        smtp_hostname="out.sealmail.test",
        smime_trust_file=smime_ca.ca_path,
        key_discovery="off",
    )
    services = build_services(settings)
    try:
        tenant = make_tenant(services)
        keys = services.identities.create_dkim_keys(tenant.id, "clinic.example", actor="test")
        for record in dns_records("clinic.example", keys):
            dns.add(record.name, record.type, record.zone_value)
        fpr = gpg.gen_key("Pat Patient <pat@pgp.example>")
        services.keydir.upload(tenant.id, gpg.export(fpr), "test")
        sam = smime_ca.issue("sam@smime.example")
        services.keydir.upload(tenant.id, sam.cert_pem, "test")

        body = MessageIn.model_validate(
            {
                "from": "Results <results@clinic.example>",
                "to": ["pat@pgp.example", "sam@smime.example", "tia@tls.example", "pam@plain.example"],
                "subject": SUBJECT,
                "text": BODY,
                "stream": "phi",
            }
        )
        sub = compose.from_message(body, "clinic.example", 1000)
        accepted, _ = services.messages.submit(tenant.principal, sub)

        async def run() -> None:
            transport = build_transport(settings)
            try:
                await build_worker(services, transport).run_until_idle(timeout=60)
            finally:
                await transport.close()

        asyncio.run(run())
        got = {s: sinks[s].wait_for(1)[0] for s in sinks}

        # Every message is DKIM-signed and verifies with an independent verifier.
        resolver = dns_resolver.Resolver(configure=False)
        resolver.nameservers = [dns_nameserver.Do53Nameserver(*dns.address)]
        monkeypatch.setattr(dns_resolver, "default_resolver", resolver)
        for received in got.values():
            assert b"DKIM-Signature:" in received.data
            assert dkimpy.verify(received.data), "DKIM signature does not verify"

        # OpenPGP: GnuPG decrypts it and finds the original text and the protected subject.
        pgp_msg = email.message_from_bytes(got["127.0.0.2"].data)
        assert pgp_msg.get_content_type() == "multipart/encrypted"
        assert SUBJECT not in str(pgp_msg["Subject"])
        armored = pgp_msg.get_payload()[1].get_payload(decode=True)
        plain = gpg.decrypt(armored).stdout.decode()
        assert BODY in plain
        assert SUBJECT in plain

        # S/MIME: openssl cms decrypts it.
        smime_file = tmp_path / "smime.eml"
        smime_file.write_bytes(got["127.0.0.3"].data)
        opened = subprocess.run(
            [
                "openssl",
                "cms",
                "-decrypt",
                "-in",
                str(smime_file),
                "-recip",
                str(sam.cert_path),
                "-inkey",
                str(sam.key_path),
            ],
            capture_output=True,
            check=True,
            timeout=30,
        )
        assert BODY in opened.stdout.decode()

        # TLS: the message itself, over verified TLS.
        assert got["127.0.0.4"].tls
        assert BODY.encode() in got["127.0.0.4"].data

        # Portal: a notice without PHI, even though it travelled in the clear.
        notice = got["127.0.0.5"]
        assert not notice.tls
        assert b"biopsy" not in notice.data and b"pathology" not in notice.data
        assert b"sent you a secure message" in notice.data

        events = services.messages.list_events(
            tenant.principal, message_id=accepted.id, type_="message.delivered"
        ).data
        methods = {e["recipient"]: e["data"]["secureline"] for e in events}
        assert methods["pat@pgp.example"]["method"] == "pgp"
        assert methods["pat@pgp.example"]["reason"].startswith("pgp: key 0x")
        assert "from the key directory" in methods["pat@pgp.example"]["reason"]
        assert methods["sam@smime.example"]["method"] == "smime"
        assert methods["tia@tls.example"]["method"] == "tls"
        assert methods["tia@tls.example"]["reason"] == "tls: verified certificate for mx.tls.example, " + (
            got["127.0.0.4"].tls_version or ""
        )
        assert methods["pam@plain.example"]["method"] == "portal"
        assert "STARTTLS" in methods["pam@plain.example"]["reason"]
    finally:
        services.close()
