"""Signed proof of delivery: built from a real delivery over verified TLS, checked offline,
and refused by ``sealmail verify`` the moment one byte of it changes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pypdf import PdfReader
from tests.conftest import make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.integration.evidence.harness import Delivered, cli_env, deliver_one
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.gpg import GnuPG
from typer.testing import CliRunner

from sealmail.app import build_evidence
from sealmail.cli import app as sealmail_cli
from sealmail.evidence import signed
from sealmail.intake.api.app import create_api
from sealmail.store.events import EventType, emit
from sealmail.store.tables import audit_log

pytestmark = [pytest.mark.hipaa("164.312(c)(1)"), pytest.mark.hipaa("164.312(e)(1)")]

runner = CliRunner()


@pytest.fixture
def delivered(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Delivered]:
    done = deliver_one(tmp_path, db_url, dns, ca, mx)
    yield done
    done.services.close()


def _env(d: Delivered) -> dict[str, str]:
    return cli_env(d.services)


def test_proof_states_what_was_accepted_sent_and_how_it_was_secured(delivered: Delivered) -> None:
    d = delivered
    evidence = build_evidence(d.services)
    doc = evidence.proofs.issue(d.tenant.id, d.message_id, d.recipient_id, "test")
    body = doc["body"]
    assert body["recipient"] == "tia@tls.example"
    # As sent: the bytes the MX received in DATA.
    assert body["sha256"]["sent"] == hashlib.sha256(d.received.data).hexdigest()
    # As accepted: the stored content, which differs from what was sent (trace header, DKIM).
    content = d.services.messages.content(d.tenant.principal, d.message_id)
    assert body["sha256"]["accepted"] and body["sha256"]["accepted"] != body["sha256"]["sent"]
    assert content  # reading content is possible: the hash was computed from it
    assert body["method"]["name"] == "tls" and body["method"]["reason"].startswith("tls: verified")
    assert body["transport"]["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert body["transport"]["tls_cipher"]
    assert body["transport"]["certificate_sha256"] == hashlib.sha256(d.cert.der).hexdigest()
    assert body["transport"]["certificate_verified"] is True
    assert body["transport"]["verified_by"] == "pkix"
    assert body["remote"]["code"] == 250
    assert body["audit"]["accepted_seq"] < body["audit"]["issued_seq"]
    verdict = signed.verify(doc, signed.key_fingerprint(evidence.keys.tenant(d.tenant.id).public_key()))
    assert verdict.ok, verdict.problems


def test_proof_over_http_is_tenant_scoped_and_refused_before_delivery(delivered: Delivered) -> None:
    d = delivered
    other = make_tenant(d.services, "Other", "other.example")
    with TestClient(create_api(d.services)) as http:
        path = f"/v1/messages/{d.message_id}/recipients/{d.recipient_id}/proof"
        got = http.get(path, headers={"Authorization": f"Bearer {d.tenant.api_key}"})
        assert got.status_code == 200, got.text
        assert signed.verify(got.json()).ok
        assert got.json()["body"]["recipient_id"] == d.recipient_id
        foreign = http.get(path, headers={"Authorization": f"Bearer {other.api_key}"})
        assert foreign.status_code == 404
        assert foreign.headers["content-type"].startswith("application/problem+json")
        missing = http.get(
            f"/v1/messages/{d.message_id}/recipients/rcp_nope/proof",
            headers={"Authorization": f"Bearer {d.tenant.api_key}"},
        )
        assert missing.status_code == 404


def test_cli_proof_verifies_offline_and_a_flipped_byte_is_named(delivered: Delivered, tmp_path: Path) -> None:
    d = delivered
    target = tmp_path / "proof.json"
    made = runner.invoke(sealmail_cli, ["evidence", "proof", d.message_id, "--out", str(target)], env=_env(d))
    assert made.exit_code == 0, made.output
    key = runner.invoke(sealmail_cli, ["evidence", "key"], env=_env(d))
    fingerprint = key.output.strip()
    ok = runner.invoke(sealmail_cli, ["verify", str(target), "--key", fingerprint])
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output

    # One byte of the as-sent hash changed: the field is named.
    text = target.read_text()
    sent = json.loads(text)["body"]["sha256"]["sent"]
    flipped = sent[:-1] + ("0" if sent[-1] != "0" else "1")
    target.write_text(text.replace(sent, flipped))
    bad = runner.invoke(sealmail_cli, ["verify", str(target)])
    assert bad.exit_code == 1
    assert "body.sha256.sent: altered after signing" in bad.output

    # The remote reply edited: named too.
    doc = json.loads(text)
    doc["body"]["remote"]["code"] = 251
    target.write_text(json.dumps(doc))
    bad = runner.invoke(sealmail_cli, ["verify", str(target)])
    assert bad.exit_code == 1 and "body.remote.code" in bad.output

    # A forged manifest to match: the signature fails instead.
    doc["manifest"] = signed.manifest(doc["body"])
    target.write_text(json.dumps(doc))
    bad = runner.invoke(sealmail_cli, ["verify", str(target)])
    assert bad.exit_code == 1 and "signature: does not verify" in bad.output

    # Re-signed with another key: intact, but not by the trusted key.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    forged = signed.sign(doc["format"], doc["body"], Ed25519PrivateKey.generate())
    target.write_text(json.dumps(forged))
    bad = runner.invoke(sealmail_cli, ["verify", str(target), "--key", fingerprint])
    assert bad.exit_code == 1 and "not the trusted key" in bad.output

    target.write_bytes(b"{not json")
    bad = runner.invoke(sealmail_cli, ["verify", str(target)])
    assert bad.exit_code == 1


def test_delivery_report_counts_the_recipient_under_verified_tls(delivered: Delivered) -> None:
    d = delivered
    headers = {"Authorization": f"Bearer {d.tenant.api_key}"}
    with TestClient(create_api(d.services)) as http:
        got = http.get(
            "/v1/reports/delivery.csv",
            params={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
            headers=headers,
        )
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(got.text)))
        [tls] = [r for r in rows if r["status"] == "delivered"]
        assert tls["method"] == "tls" and tls["recipients"] == "1"
        assert tls["secured_by"].startswith("verified TLS (TLSv1.") and tls["verified_by"] == "pkix"
        assert [r["recipients"] for r in rows if r["status"] == "sent"] == ["1"]
        assert [r["recipients"] for r in rows if r["status"] == "opened"] == ["0"]
        # A period before the message: nothing but the zero totals.
        empty = http.get(
            "/v1/reports/delivery.csv",
            params={"since": "2000-01-01T00:00:00Z", "until": "2001-01-01T00:00:00Z"},
            headers=headers,
        )
        assert [(r["status"], r["recipients"]) for r in csv.DictReader(io.StringIO(empty.text))] == [
            ("sent", "0"),
            ("opened", "0"),
        ]
        backwards = http.get(
            "/v1/reports/delivery.csv",
            params={"since": "2001-01-01T00:00:00Z", "until": "2000-01-01T00:00:00Z"},
            headers=headers,
        )
        assert backwards.status_code == 400
        assert backwards.headers["content-type"].startswith("application/problem+json")
    # Exporting a report is audited.
    with d.services.engine.connect() as conn:
        actions = conn.execute(sa.select(audit_log.c.action)).scalars().all()
    assert actions.count("report:exported") == 2


def _opened(http: TestClient, headers: dict[str, str]) -> list[str]:
    got = http.get(
        "/v1/reports/delivery.csv",
        params={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
        headers=headers,
    )
    return [r["recipients"] for r in csv.DictReader(io.StringIO(got.text)) if r["status"] == "opened"]


def test_delivery_report_counts_people_who_opened_once_and_never_scanners(delivered: Delivered) -> None:
    d = delivered
    headers = {"Authorization": f"Bearer {d.tenant.api_key}"}

    def event(type_: EventType, data: dict[str, object]) -> None:
        with d.services.engine.begin() as conn:
            emit(
                conn,
                tenant_id=d.tenant.id,
                message_id=d.message_id,
                type_=type_,
                recipient_id=d.recipient_id,
                recipient="tia@tls.example",
                data=data,
            )

    with TestClient(create_api(d.services)) as http:
        event(EventType.OPENED, {"bot_suspected": True, "reason": "prefetch"})
        assert _opened(http, headers) == ["0"]  # a link scanner's fetch is not a reader
        event(EventType.OPENED, {"bot_suspected": False})
        assert _opened(http, headers) == ["1"]
        event(EventType.PORTAL_VIEWED, {})
        event(EventType.OPENED, {})
        assert _opened(http, headers) == ["1"]  # one recipient, however often


def test_delivery_report_pdf_reads_back_with_the_same_figures(delivered: Delivered, tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    args = [
        "evidence",
        "report",
        "--since",
        "2000-01-01",
        "--until",
        "2100-01-01",
        "--pdf",
        "--out",
        str(target),
    ]
    made = runner.invoke(sealmail_cli, args, env=_env(delivered))
    assert made.exit_code == 0, made.output
    text = "\n".join(page.extract_text() for page in PdfReader(str(target)).pages)
    assert "Sealmail delivery report" in text
    assert "verified TLS (TLSv1." in text and "pkix" in text
    assert "secured_by" in text
    no_out = runner.invoke(sealmail_cli, args[:-2], env=_env(delivered))
    assert no_out.exit_code == 2


@pytest.mark.skipif(shutil.which("gpg") is None, reason="GnuPG (gpg) is not installed")
def test_proof_of_a_pgp_delivery_names_the_full_key_and_its_source(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    gpg = GnuPG(tmp_path / "gnupg")
    try:
        fpr = gpg.gen_key("Tia <tia@tls.example>")
        d = deliver_one(tmp_path, db_url, dns, ca, mx, pgp_cert=gpg.export(fpr))
    finally:
        gpg.close()
    try:
        doc = build_evidence(d.services).proofs.issue(d.tenant.id, d.message_id, d.recipient_id, "test")
    finally:
        d.services.close()
    method = doc["body"]["method"]
    assert method["name"] == "pgp"
    assert method["key"]["fingerprint"].upper() == fpr.upper()
    assert method["key"]["source"] == "uploaded"
    assert doc["body"]["sha256"]["sent"] == hashlib.sha256(d.received.data).hexdigest()
