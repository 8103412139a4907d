"""Scheduled anchors are mailed, signed, to each tenant's compliance officer(s) — once per
anchor and address, however many workers tick at once."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import make_settings, make_tenant

from sealmail.app import build_evidence, build_services
from sealmail.evidence import signed
from sealmail.evidence.schedule import EvidenceSchedule
from sealmail.evidence.tables import anchor_mailings
from sealmail.intake.api.app import create_api
from sealmail.store.tables import audit_log, messages

pytestmark = pytest.mark.hipaa("164.312(b)")

OFFICERS = ["officer@clinic.example", "Deputy@Clinic.example"]


def test_each_scheduled_anchor_is_mailed_once_to_each_named_officer(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    workers = [build_services(settings) for _ in range(3)]
    try:
        clinic = make_tenant(workers[0])
        make_tenant(workers[0], "Quiet", "quiet.example")  # names nobody: gets nothing
        auth = {"Authorization": f"Bearer {clinic.api_key}"}
        with TestClient(create_api(workers[0])) as http:
            bad = http.put(
                "/v1/evidence/anchor-recipients", json={"anchor_recipients": ["no at"]}, headers=auth
            )
            assert bad.status_code == 400 and bad.headers["content-type"].startswith(
                "application/problem+json"
            )
            assert http.get("/v1/evidence/anchor-recipients", headers=auth).json() == {
                "anchor_recipients": []
            }
            put = http.put(
                "/v1/evidence/anchor-recipients", json={"anchor_recipients": OFFICERS}, headers=auth
            )
            assert put.status_code == 200, put.text
            assert put.json()["anchor_recipients"] == ["officer@clinic.example", "deputy@clinic.example"]

        now = datetime(2026, 12, 4, 3, 17, tzinfo=UTC)
        schedules = [EvidenceSchedule(build_evidence(w), timedelta(hours=1), None) for w in workers]
        threads = [threading.Thread(target=s.tick, args=(now,)) for s in schedules]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        schedules[0].tick(now + timedelta(minutes=5))  # same period: no second mailing

        services = workers[0]
        with services.engine.connect() as conn:
            rows = conn.execute(sa.select(messages).where(messages.c.tenant_id == clinic.id)).all()
            mailed = conn.execute(sa.select(anchor_mailings)).all()
            audited = conn.execute(
                sa.select(sa.func.count()).where(audit_log.c.action == "audit_anchor:mailed")
            ).scalar_one()
        assert len(rows) == 2 and len(mailed) == 2 and audited == 2
        assert {m.address for m in mailed} == {"officer@clinic.example", "deputy@clinic.example"}
        assert {m.tenant_id for m in mailed} == {clinic.id}
        installation = signed.key_fingerprint(build_evidence(services).keys.installation().public_key())
        for row in rows:
            raw = services.keyring.open(
                clinic.id, row.id, row.tenant_key_id, row.wrapped_data_key, row.content
            )
            mail = email.message_from_bytes(raw, policy=email.policy.default)
            [part] = [p for p in mail.iter_attachments() if (p.get_filename() or "").startswith("anchor-")]
            doc = json.loads(part.get_content())
            assert signed.verify(doc, installation).ok
            assert doc["body"]["anchor_id"] == mailed[0].anchor_id
            doc["body"]["seq"] += 1  # a tampered copy no longer verifies
            assert not signed.verify(doc, installation).ok

        # The next period's anchor goes out again, to each officer once.
        schedules[1].tick(now + timedelta(hours=1))
        with services.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(anchor_mailings)).scalar_one() == 4
    finally:
        for w in workers:
            w.close()
