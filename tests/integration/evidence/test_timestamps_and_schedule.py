"""RFC 3161 time-stamps from a real TSA on loopback (``openssl ts -reply``), checked with
``openssl ts -verify``; scheduled anchoring, once per period however many workers tick."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.integration.evidence.harness import deliver_one
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.tsa import TimestampAuthority
from typer.testing import CliRunner

from sealmail.app import Services, build_evidence, build_services
from sealmail.cli import app as sealmail_cli
from sealmail.errors import ServiceUnavailable
from sealmail.evidence.schedule import EvidenceSchedule, period_of
from sealmail.evidence.tables import audit_anchors
from sealmail.store.tables import audit_log

pytestmark = pytest.mark.hipaa("164.312(b)")

runner = CliRunner()


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[TimestampAuthority]:
    with TimestampAuthority(tmp_path / "tsa") as authority:
        yield authority


@pytest.fixture
def stamped(tmp_path: Path, db_url: str, tsa: TimestampAuthority) -> Iterator[Services]:
    svc = build_services(make_settings(tmp_path, db_url, evidence_tsa_url=tsa.url))
    make_tenant(svc)  # something in the audit log to anchor
    yield svc
    svc.close()


def _openssl_verify(doc: dict[str, object], ca: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    stamp = doc["timestamp"]
    assert isinstance(stamp, dict)
    token = tmp / "token.tst"
    token.write_bytes(base64.b64decode(stamp["token"]))
    return subprocess.run(
        ["openssl", "ts", "-verify", "-digest", stamp["imprint_sha256"], "-in", str(token), "-token_in",
         "-CAfile", str(ca)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_anchor_is_time_stamped_and_openssl_verifies_it(
    stamped: Services, tsa: TimestampAuthority, tmp_path: Path
) -> None:
    doc = build_evidence(stamped).anchor("test")
    assert tsa.requests == 1
    done = _openssl_verify(doc, tsa.ca_file, tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    with stamped.engine.connect() as conn:
        token = conn.execute(sa.select(audit_anchors.c.timestamp_token)).scalar_one()
    assert token == base64.b64decode(doc["timestamp"]["token"])

    path = tmp_path / "anchor.json"
    path.write_text(json.dumps(doc))
    ok = runner.invoke(sealmail_cli, ["verify", str(path), "--tsa-ca", str(tsa.ca_file)])
    assert ok.exit_code == 0 and "time-stamped" in ok.output, ok.output

    # A token lifted from another document does not cover this one.
    other = build_evidence(stamped).anchor("test")
    swapped = {**doc, "timestamp": other["timestamp"]}
    path.write_text(json.dumps(swapped))
    bad = runner.invoke(sealmail_cli, ["verify", str(path), "--tsa-ca", str(tsa.ca_file)])
    assert bad.exit_code == 1 and "covers a different document" in bad.output, bad.output
    # The right imprint but a token from another TSA's CA does not verify.
    stranger = TimestampAuthority(tmp_path / "stranger")
    path.write_text(json.dumps(doc))
    wrong_ca = runner.invoke(sealmail_cli, ["verify", str(path), "--tsa-ca", str(stranger.ca_file)])
    assert wrong_ca.exit_code == 1 and "openssl ts -verify failed" in wrong_ca.output, wrong_ca.output


def test_a_tsa_that_fails_leaves_no_anchor(stamped: Services, tsa: TimestampAuthority) -> None:
    tsa.refuse = True
    with pytest.raises(ServiceUnavailable, match="HTTP 500"):
        build_evidence(stamped).anchor("test")
    with stamped.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_anchors)).scalar_one() == 0


def test_the_schedule_anchors_unstamped_when_the_tsa_is_down_and_says_so(
    stamped: Services, tsa: TimestampAuthority
) -> None:
    tsa.refuse = True
    schedule = EvidenceSchedule(build_evidence(stamped), timedelta(hours=1), None)
    now = datetime(2026, 12, 4, 5, 17, tzinfo=UTC)
    assert schedule.tick(now).anchored == "2026-12-04T05:00"  # a TSA outage skips no period
    with stamped.engine.connect() as conn:
        stored = conn.execute(sa.select(audit_anchors)).one()
        details = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "audit:anchored")
        ).scalar_one()
    assert stored.timestamp_token is None and "timestamp" not in stored.document
    assert "HTTP 500" in details["timestamp_missing"]
    assert build_evidence(stamped).anchors.verify().ok  # the signed anchor still checks
    tsa.refuse = False
    later = schedule.tick(now + timedelta(hours=1))
    assert later.anchored == "2026-12-04T06:00"
    with stamped.engine.connect() as conn:
        tokens = conn.execute(sa.select(audit_anchors.c.timestamp_token).order_by(audit_anchors.c.seq)).all()
    assert tokens[0][0] is None and tokens[1][0]  # stamped again once the TSA answers


def test_scheduled_anchoring_is_once_per_period_across_workers(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    workers = [build_services(settings) for _ in range(3)]
    try:
        make_tenant(workers[0])
        hour = timedelta(hours=1)
        now = datetime(2026, 12, 4, 3, 17, tzinfo=UTC)
        schedules = [EvidenceSchedule(build_evidence(w), hour, None) for w in workers]
        results: list[str | None] = []
        threads = [
            threading.Thread(target=lambda s=s: results.append(s.tick(now).anchored)) for s in schedules
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(r for r in results if r) == ["2026-12-04T03:00"]
        assert schedules[0].tick(now + timedelta(minutes=30)).anchored is None  # same period
        assert schedules[1].tick(now + hour).anchored == "2026-12-04T04:00"
        with workers[0].engine.connect() as conn:
            periods = conn.execute(
                sa.select(audit_anchors.c.period).order_by(audit_anchors.c.period)
            ).scalars()
            assert list(periods) == ["2026-12-04T03:00", "2026-12-04T04:00"]
        assert build_evidence(workers[0]).anchors.verify().ok
    finally:
        for w in workers:
            w.close()


def test_period_names_start_of_period() -> None:
    at = datetime(2026, 12, 4, 3, 59, 59, tzinfo=UTC)
    assert period_of(at, timedelta(hours=1)) == "2026-12-04T03:00"
    assert period_of(at, timedelta(minutes=15)) == "2026-12-04T03:45"
    assert period_of(at, timedelta(days=1)) == "2026-12-04T00:00"


def test_the_worker_schedule_purges_every_tenant_once_per_interval(services: Services) -> None:
    from sealmail.audit import AuditAction
    from sealmail.evidence.retention import FLOOR_DAYS, RetentionPolicy
    from sealmail.messages import compose
    from sealmail.messages.schemas import MessageIn
    from sealmail.store.tables import audit_log

    clinic = make_tenant(services)
    make_tenant(services, "Second", "second.example")
    services.evidence.retention.set_policy(clinic.id, RetentionPolicy(1, FLOOR_DAYS, FLOOR_DAYS), "test")
    body = MessageIn.model_validate(
        {"from": "a@clinic.example", "to": ["b@example.org"], "subject": "s", "text": "t"}
    )
    accepted, _ = services.messages.submit(
        clinic.principal, compose.from_message(body, "clinic.example", 1000)
    )
    services.messages.cancel(clinic.principal, accepted.id)

    def runs() -> int:
        with services.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(audit_log.c.action == str(AuditAction.RETENTION_RUN))
                ).scalar_one()
            )

    schedule = EvidenceSchedule(build_evidence(services), None, timedelta(hours=1))
    now = datetime.now(UTC)
    assert schedule.tick(now).purged_tenants == 2
    assert runs() == 0  # nothing was due: an idle scheduled run leaves no entry
    assert schedule.tick(now + timedelta(minutes=10)).purged_tenants == 0  # not yet due again
    assert schedule.tick(now + timedelta(days=2)).purged_tenants == 2
    assert runs() == 1  # the clinic's message was shredded: that run is on the record


def test_a_proof_of_delivery_is_time_stamped_and_verified_offline(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm, tsa: TimestampAuthority
) -> None:
    from sealmail.app import EVIDENCE_SECRET
    from sealmail.evidence.service import Evidence
    from sealmail.evidence.timestamps import Timestamper

    d = deliver_one(tmp_path, db_url, dns, ca, mx)
    try:
        s = d.services
        evidence = Evidence(
            s.engine, s.keyring, lambda p: s.site_secrets.key(p, EVIDENCE_SECRET), None, Timestamper(tsa.url)
        )
        doc = evidence.proofs.issue(d.tenant.id, d.message_id, d.recipient_id, "test")
        done = _openssl_verify(doc, tsa.ca_file, tmp_path)
        assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
        path = tmp_path / "proof.json"
        path.write_text(json.dumps(doc))
        ok = runner.invoke(sealmail_cli, ["verify", str(path), "--tsa-ca", str(tsa.ca_file)])
        assert ok.exit_code == 0 and "time-stamped" in ok.output, ok.output
        doc["body"]["remote"]["code"] = 251  # the signature catches it, and so does the imprint
        path.write_text(json.dumps(doc))
        bad = runner.invoke(sealmail_cli, ["verify", str(path), "--tsa-ca", str(tsa.ca_file)])
        assert bad.exit_code == 1 and "body.remote.code: altered" in bad.output, bad.output
    finally:
        d.services.close()
