"""Anchored audit chain: a history rewritten before an anchor is caught, even when every
later hash was recomputed so that the chain alone still verifies."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.evidence.harness import cli_env
from typer.testing import CliRunner

from sealmail import audit
from sealmail.app import Services, build_evidence
from sealmail.cli import app as sealmail_cli
from sealmail.errors import Conflict
from sealmail.evidence import signed
from sealmail.evidence.tables import audit_anchors
from sealmail.store.tables import audit_head, audit_log, messages

pytestmark = [pytest.mark.hipaa("164.312(b)"), pytest.mark.hipaa("164.312(c)(1)")]

runner = CliRunner()


def _rewrite_from(services: Services, seq: int) -> None:
    """What a database administrator with SQL access can do: edit an entry, then recompute
    every later hash and the head, so ``audit.verify`` finds nothing wrong."""
    with services.engine.begin() as conn:
        rows = conn.execute(
            sa.select(audit_log).where(audit_log.c.seq >= seq).order_by(audit_log.c.seq)
        ).mappings()
        prev = (
            conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == seq - 1)).scalar()
            or audit.GENESIS
        )
        for row in [dict(r) for r in rows]:
            if row["seq"] == seq:
                row["details"] = {**row["details"], "rewritten": True}
            row["prev_hash"] = prev
            row["hash"] = audit._digest(prev, row)
            conn.execute(
                sa.update(audit_log)
                .where(audit_log.c.seq == row["seq"])
                .values(details=row["details"], prev_hash=row["prev_hash"], hash=row["hash"])
            )
            prev = row["hash"]
        conn.execute(sa.update(audit_head).where(audit_head.c.id == 1).values(hash=prev))


def test_rewritten_history_before_an_anchor_is_reported(services: Services, tenant: TenantFixture) -> None:
    evidence = build_evidence(services)
    doc = evidence.anchors.anchor("test")
    assert signed.verify(doc, signed.key_fingerprint(evidence.keys.installation().public_key())).ok
    services.tenancy.create_api_key(tenant.id, "later", ["read"], actor="test")  # entries after the anchor
    clean = evidence.anchors.verify()
    assert clean.ok and clean.anchors == 1, clean.problems

    _rewrite_from(services, 2)
    assert audit.verify(services.engine).ok  # the chain alone is fooled
    result = evidence.anchors.verify()
    assert not result.ok
    assert f"entry {doc['body']['seq']} no longer has the anchored hash" in result.problems[0]


def test_an_edited_entry_fails_the_cli_verify(
    services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    env = cli_env(services)
    target = tmp_path / "anchor.json"
    made = runner.invoke(sealmail_cli, ["audit", "anchor", "--out", str(target)], env=env)
    assert made.exit_code == 0, made.output
    assert runner.invoke(sealmail_cli, ["verify", str(target)]).exit_code == 0
    ok = runner.invoke(sealmail_cli, ["audit", "verify"], env=env)
    assert ok.exit_code == 0 and "1 anchors agree" in ok.output, ok.output

    with services.engine.begin() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == 1).values(actor="someone-else"))
    bad = runner.invoke(sealmail_cli, ["audit", "verify"], env=env)
    assert bad.exit_code == 1
    assert "entry 1 was edited" in bad.output


def test_a_forged_anchor_does_not_verify(services: Services, tenant: TenantFixture) -> None:
    evidence = build_evidence(services)
    doc = evidence.anchors.anchor("test")
    _rewrite_from(services, 1)
    # The administrator also "fixes" the anchor to the new hash — without the installation key.
    with services.engine.connect() as conn:
        seq = doc["body"]["seq"]
        new_hash = conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == seq)).scalar_one()
    forged = {**doc, "body": {**doc["body"], "head_hash": new_hash}}
    with services.engine.begin() as conn:
        conn.execute(sa.update(audit_anchors).values(document=forged, head_hash=new_hash))
    result = evidence.anchors.verify()
    assert not result.ok
    assert any("body.head_hash: altered after signing" in p for p in result.problems)


def test_anchoring_an_empty_log_is_refused(services: Services) -> None:
    assert audit.count(services.engine) == 0  # a fresh database: nothing audited yet
    with pytest.raises(Conflict, match="nothing to anchor"):
        build_evidence(services).anchors.anchor("test")


def test_anchor_mailed_to_the_officer_carries_a_verifiable_copy(
    services: Services, tenant: TenantFixture, tmp_path: Path
) -> None:
    env = cli_env(services)
    args = ["audit", "anchor", "--mail-to", "officer@clinic.example"]
    made = runner.invoke(sealmail_cli, args, env=env)
    assert made.exit_code == 0, made.output
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(messages).where(messages.c.tenant_id == tenant.id)).one()
    raw = services.keyring.open(tenant.id, row.id, row.tenant_key_id, row.wrapped_data_key, row.content)
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    [part] = [p for p in mail.iter_attachments() if (p.get_filename() or "").startswith("anchor-")]
    doc = json.loads(part.get_content())
    installation = signed.key_fingerprint(build_evidence(services).keys.installation().public_key())
    assert signed.verify(doc, installation).ok
    assert f"entry {doc['body']['seq']}" in str(mail["Subject"])
    bad = runner.invoke(sealmail_cli, ["audit", "anchor", "--mail-to", "not an address"], env=env)
    assert bad.exit_code == 2
