"""Retention rules at the edges (164.316(b)(2), 164.530(j)): a quarantined message is never
purged while quarantined, and file shares' crypto-shredding obeys legal holds (tenant,
message, recipient) as message retention does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture

from sealmail.app import Services, build_evidence, build_file_shares
from sealmail.errors import Conflict
from sealmail.evidence.retention import FLOOR_DAYS, RetentionPolicy
from sealmail.files.service import FileShares, ShareRequest
from sealmail.files.tables import file_shares
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import messages, recipients

pytestmark = [pytest.mark.hipaa("164.316(b)(2)"), pytest.mark.hipaa("164.530(j)")]

LATER = timedelta(days=31)


def _submit(services: Services, tenant: TenantFixture, text: str) -> str:
    body = MessageIn.model_validate(
        {
            "from": f"results@{tenant.domain}",
            "to": ["ann@example.org"],
            "subject": "R",
            "text": text,
            "stream": "phi",
        }
    )
    accepted, _ = services.messages.submit(tenant.principal, compose.from_message(body, tenant.domain, 1000))
    return accepted.id


def _key(services: Services, message_id: str) -> bytes | None:
    with services.engine.connect() as conn:
        return conn.execute(
            sa.select(messages.c.wrapped_data_key).where(messages.c.id == message_id)
        ).scalar()


def test_a_quarantined_message_is_never_purged_while_quarantined(
    services: Services, tenant: TenantFixture
) -> None:
    retention = build_evidence(services).retention
    retention.set_policy(tenant.id, RetentionPolicy(30, FLOOR_DAYS, FLOOR_DAYS), "officer")
    services.tenancy.update_settings(tenant.id, {"dlp": {"actions": {"ssn": "quarantine"}}}, "test")
    held = _submit(services, tenant, "Patient SSN 123-45-6780")
    assert services.messages.get(tenant.principal, held).status == "quarantined"
    assert retention.purge(tenant.id, "test", datetime.now(UTC) + LATER).shredded == 0
    assert _key(services, held) is not None

    # Even when its recipients' rows no longer say so (a hand edit, a future code path), the
    # message's own state keeps it: nothing decided about it may lose the content it is about.
    with services.engine.begin() as conn:
        conn.execute(sa.update(recipients).where(recipients.c.message_id == held).values(status="cancelled"))
    assert retention.purge(tenant.id, "test", datetime.now(UTC) + LATER).shredded == 0
    assert _key(services, held) is not None

    # Out of quarantine (rejected by the officer: cancelled), retention applies again.
    with services.engine.begin() as conn:
        conn.execute(sa.update(messages).where(messages.c.id == held).values(status="cancelled"))
    assert retention.purge(tenant.id, "test", datetime.now(UTC) + LATER).shredded == 1
    assert _key(services, held) is None


def _shares(services: Services) -> FileShares:
    return build_file_shares(services)


def _sent_file(shares: FileShares, tenant: TenantFixture, to: str) -> str:
    upload = shares.start(tenant.principal, "scan.pdf", "application/pdf")
    upload.feed(b"%PDF-1.7 lab results " * 100)
    file_id = upload.finish().id
    shares.send(tenant.principal, file_id, ShareRequest(f"doc@{tenant.domain}", (to,), "Your scan"))
    return file_id


def _expire_all(services: Services) -> None:
    with services.engine.begin() as conn:
        conn.execute(sa.update(file_shares).values(expires_at=datetime.now(UTC) - timedelta(days=1)))


def _status(services: Services, file_id: str) -> str:
    with services.engine.connect() as conn:
        return str(
            conn.execute(sa.select(file_shares.c.status).where(file_shares.c.id == file_id)).scalar_one()
        )


@pytest.mark.parametrize("scope", ["message", "recipient", "tenant"])
def test_file_shredding_respects_legal_holds(services: Services, tenant: TenantFixture, scope: str) -> None:
    shares = _shares(services)
    retention = build_evidence(services).retention
    held_file = _sent_file(shares, tenant, "cy@example.org")
    free_file = _sent_file(shares, tenant, "dee@example.org")
    held_message = shares.describe(tenant.id, held_file).message_id
    assert held_message is not None
    target = {"message": held_message, "recipient": "Cy@Example.org", "tenant": ""}[scope]
    hold = retention.place_hold(tenant.id, scope, target, "litigation 2026-17", "officer")

    _expire_all(services)
    swept = shares.sweep()
    assert _status(services, held_file) == "ready"
    with pytest.raises(Conflict, match="legal hold"):
        shares.delete(tenant.principal, held_file)
    assert shares.open(tenant.id, held_file).filename == "scan.pdf"  # still opens: the key is kept
    if scope == "tenant":
        assert swept == 0 and _status(services, free_file) == "ready"
    else:
        assert swept == 1 and _status(services, free_file) == "deleted"

    retention.release_hold(tenant.id, hold.id, "officer")
    assert shares.sweep() >= 1
    assert _status(services, held_file) == "deleted"


def test_an_unsent_upload_is_kept_by_a_tenant_hold_only(services: Services, tenant: TenantFixture) -> None:
    shares = _shares(services)
    retention = build_evidence(services).retention
    upload = shares.start(tenant.principal, "draft.pdf", "application/pdf")
    upload.feed(b"draft")
    file_id = upload.finish().id
    retention.place_hold(tenant.id, "recipient", "cy@example.org", "unrelated", "officer")
    hold = retention.place_hold(tenant.id, "tenant", "", "audit 2026", "officer")
    with pytest.raises(Conflict, match="legal hold"):
        shares.delete(tenant.principal, file_id)
    retention.release_hold(tenant.id, hold.id, "officer")
    assert shares.delete(tenant.principal, file_id).status == "deleted"
