"""The delivery trail of a real delivery: an OpenPGP copy through the worker to a loopback MX
over verified STARTTLS, read back from the API's message detail and the console's trail
page — the key and where it came from, TLS version and cipher, the certificate's SHA-256,
what vouched for it (nothing: an encrypted copy takes opportunistic TLS) and the remote
reply, as the proof of delivery states them.  The verified-TLS case runs in the browser suite."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.console.console_harness import console_server, person
from tests.integration.delivery.conftest import MxFarm, ca, dns, mx
from tests.integration.evidence.harness import deliver_one
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.gpg import GnuPG

from sealmail.intake.api.app import create_api
from sealmail.users.roles import Role

__all__ = ["ca", "dns", "mx"]

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="GnuPG (gpg) is not installed")


def test_trail_names_the_key_its_source_and_the_tls_session_of_a_pgp_delivery(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Tia <tia@tls.example>")
        d = deliver_one(tmp_path, db_url, dns, ca, mx, pgp_cert=gpg.export(fpr))
    finally:
        gpg.close()
    cert_sha = hashlib.sha256(d.cert.der).hexdigest()
    try:
        with TestClient(create_api(d.services)) as api:
            got = api.get(
                f"/v1/messages/{d.message_id}", headers={"Authorization": f"Bearer {d.tenant.api_key}"}
            )
        assert got.status_code == 200, got.text
        [rcpt] = got.json()["recipients"]
        assert rcpt["method"] == "pgp" and "the key directory" in rcpt["method_reason"]
        [attempt] = rcpt["attempts"]
        assert attempt["key"]["fingerprint"].upper() == fpr.upper() and attempt["key"]["source"] == "uploaded"
        assert attempt["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and attempt["tls"]["cipher"]
        assert attempt["tls"]["certificate_sha256"] == cert_sha
        # The copy is encrypted, so the MX's certificate was taken opportunistically (unverified).
        assert attempt["tls"]["verified_by"] == "none" and attempt["tls"]["verified"] is False
        assert attempt["smtp"]["code"] == 250

        with console_server(d.services) as console:
            support = person(console, d.tenant.id, "support@clinic.example", Role.SUPPORT)
            page = support.http.get(f"/console/messages/{d.message_id}")
            assert page.status_code == 200, page.text
            text = page.text
            assert fpr.upper() in text.upper() and "uploaded to the key directory" in text
            assert attempt["tls"]["cipher"] in text and attempt["tls"]["version"] in text
            assert cert_sha in text and ">not verified<" in text and "250" in text
            assert "Your results" not in text  # the trail never shows content
            # Support reads; it does not recall.
            assert "Recall this message" not in text
    finally:
        d.services.close()
