"""Unusable recipient keys are refused at upload, and named when a stored one stops working.

Keys come from independent tools: gpg makes the expired, revoked and sign-only OpenPGP keys,
``openssl req`` the S/MIME certificates (an EC curve without an RFC 5753 scheme, a weak RSA
key, and a P-256 certificate that ECDH now reaches).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.integration.secureline.test_policy_paths import World, world  # noqa: F401 — fixture
from tests.support.gpg import GnuPG

from sealmail.ids import new_id
from sealmail.store.tables import recipient_keys

pytestmark = [
    pytest.mark.skipif(shutil.which("gpg") is None, reason="GnuPG (gpg) is not installed"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]


def _upload(w: World, key: bytes) -> tuple[int, dict[str, object]]:
    h = {"Authorization": f"Bearer {w.tenant.api_key}"}
    resp = w.client.post("/v1/keys", json={"key": key.decode()}, headers=h)
    return resp.status_code, resp.json()


def test_unusable_openpgp_keys_are_refused_with_the_reason(world: World, tmp_path: Path) -> None:  # noqa: F811
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        expired = gpg.gen_key("Old <old@tls.example>", expire="1d", faked_time="20200101T000000")
        revoked = gpg.gen_key("Gone <gone@tls.example>")
        gpg.import_keys(gpg.revocation_certificate(revoked))
        sign_only = gpg.gen_key("Signer <signer@tls.example>", algo="ed25519", usage="sign")
        cases = {
            expired: "expired on 2020-01-02",
            revoked: "revoked",
            sign_only: "no encryption-capable subkey",
        }
        for fpr, reason in cases.items():
            status, problem = _upload(world, gpg.export(fpr))
            assert status == 422, problem
            assert problem["detail"] == f"key: OpenPGP key 0x{fpr[:16]}… is unusable: {reason}"
        h = {"Authorization": f"Bearer {world.tenant.api_key}"}
        assert world.client.get("/v1/keys", headers=h).json()["data"] == []
    finally:
        gpg.close()


def _openssl_cert(tmp_path: Path, name: str, *newkey: str) -> bytes:
    cert = tmp_path / f"{name}.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-nodes",
            "-days",
            "30",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(tmp_path / f"{name}.key"),
            "-out",
            str(cert),
            "-addext",
            "subjectAltName=email:pat@tls.example",
            *newkey,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert.read_bytes()


def test_smime_certificates_are_checked_at_upload(world: World, tmp_path: Path) -> None:  # noqa: F811
    k1 = _openssl_cert(tmp_path, "k1", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1")
    status, problem = _upload(world, k1)
    assert status == 422, problem
    assert "unsupported EC curve secp256k1" in str(problem["detail"])
    weak = _openssl_cert(tmp_path, "weak", "-newkey", "rsa:1024")
    status, problem = _upload(world, weak)
    assert status == 422, problem
    assert "RSA key too small (1024 bits" in str(problem["detail"])
    # An EC certificate on P-256 is usable now (RFC 5753 ECDH), so it is stored.
    p256 = _openssl_cert(tmp_path, "p256", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    status, body = _upload(world, p256)
    assert status == 201, body


def test_a_stored_key_that_expired_since_is_named_in_the_delivery_reason(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Pat <pat@tls.example>", expire="1d", faked_time="20200101T000000")
        now = dt.datetime.now(dt.UTC)
        # Stored while it was still valid (uploads now refuse it): the row as it was written then.
        with world.services.engine.begin() as conn:
            conn.execute(
                sa.insert(recipient_keys).values(
                    id=new_id("rk"),
                    tenant_id=world.tenant.id,
                    kind="pgp",
                    address="pat@tls.example",
                    fingerprint=fpr,
                    source="uploaded",
                    trusted=False,
                    data=gpg.export(fpr),
                    expires_at=dt.datetime(2020, 1, 2, tzinfo=dt.UTC),
                    created_at=now,
                    updated_at=now,
                )
            )
        mid = world.send()["id"]
        world.deliver()
        decision = world.delivered(mid)
        assert decision["method"] == "tls"
        assert decision["reason"].endswith(f"; OpenPGP key 0x{fpr[:16]}… expired on 2020-01-02")
    finally:
        gpg.close()
