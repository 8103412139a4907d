"""Signed-only S/MIME for mail that goes as is (tenant opt-in ``secureline.sign_smime``), with
RFC 9788 ``hp="clear"`` header protection, checked by ``openssl cms -verify``.

The recipient has no certificate, so SecureLine sends the message over verified TLS to a real
loopback MX sink; the tenant's S/MIME identity signs it when it names the From address.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.integration.secureline.test_signing_and_harvest import BODY, deliver, svc  # noqa: F401 — fixture
from tests.support.smime_ca import SmimeCA

from sealmail.app import Services
from sealmail.intake.api.app import create_api

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def test_mail_going_as_is_is_signed_with_hp_clear_and_verifies_with_openssl(
    svc: Services,  # noqa: F811
    mx: MxFarm,
    tmp_path: Path,
) -> None:
    tenant = make_tenant(svc)
    client = TestClient(create_api(svc), raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    ca: SmimeCA = svc.smime_ca  # type: ignore[attr-defined]
    signer = ca.issue("results@clinic.example")
    identity = {"certificate": signer.cert_pem.decode(), "private_key": signer.key_path.read_text()}
    assert client.put("/v1/tenant/smime-identity", headers=h, json=identity).status_code == 200
    assert (
        client.patch("/v1/tenant/policy", json={"secureline": {"sign_smime": True}}, headers=h).status_code
        == 200
    )
    for sender in ("results@clinic.example", "other@clinic.example"):
        sent = client.post(
            "/v1/messages",
            headers=h,
            json={
                "from": sender,
                "to": ["tom@p.example"],
                "subject": "Results",
                "text": BODY,
                "stream": "phi",
            },
        )
        assert sent.status_code == 202, sent.text
    deliver(svc)

    received = {
        str(email.message_from_bytes(m.data, policy=email.policy.default)["From"]): m.data
        for m in mx.sinks["127.0.0.2"].wait_for(2)
    }
    signed = received["results@clinic.example"]
    outer = email.message_from_bytes(signed, policy=email.policy.default)
    assert outer.get_content_type() == "multipart/signed"
    assert outer["Subject"] == "Results"  # hp="clear": nothing is obscured outside
    path = tmp_path / "signed.eml"
    path.write_bytes(signed)
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "SMIME", "-in", str(path), "-CAfile", str(ca.ca_path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr.decode()
    payload = email.message_from_bytes(verified.stdout, policy=email.policy.default)
    assert payload["Content-Type"].params["hp"] == "clear"
    assert payload["Content-Type"].params["protected-headers"] == "v1"
    assert payload["Subject"] == "Results" and payload["From"] == "results@clinic.example"
    assert payload.get_all("HP-Outer") is None
    assert BODY in verified.stdout.decode()

    # The identity does not name this sender: signing would show a stranger as the signer.
    other = email.message_from_bytes(received["other@clinic.example"], policy=email.policy.default)
    assert other.get_content_type() != "multipart/signed"
