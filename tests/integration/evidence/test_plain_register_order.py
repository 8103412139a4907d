"""The plain-mail register lists a request's steps in the order they happened, even when
they were written in the same instant (the portal writes "requested" and "warned" together)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.conftest import make_tenant

from sealmail.app import Services
from sealmail.evidence import plain

pytestmark = pytest.mark.hipaa("164.524(c)(2)")

ONE_INSTANT = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step at one instant, and step ids that sort *against* the order of writing, so
    ordering by (at, id) would list them backwards."""
    countdown = iter(range(999_999, 0, -1))
    real_new_id = plain.new_id

    def descending(prefix: str) -> str:
        return f"plr_{next(countdown):06d}" if prefix == "plr" else real_new_id(prefix)

    monkeypatch.setattr(plain, "_now", lambda: ONE_INSTANT)
    monkeypatch.setattr(plain, "new_id", descending)


def test_steps_written_in_one_instant_keep_their_order(services: Services, frozen: None) -> None:
    tenant = make_tenant(services, "Clinic", "clinic.example")
    register = services.evidence.plain
    recorded = register.record(tenant.id, "pat@home.example", "signed form, chart 7", "staff:ann")
    revoked = register.revoke(tenant.id, recorded.id, "staff:ann", "staff", "patient called")
    assert [s.kind for s in revoked.steps] == ["requested", "warned", "confirmed", "revoked"]
    assert {s.at.isoformat() for s in revoked.steps} == {ONE_INSTANT.isoformat(timespec="seconds")}

    second = register.request(tenant.id, "pat@home.example", "portal:pat", "portal")
    rows = register.register_rows(tenant.id, ONE_INSTANT, datetime(2027, 1, 1, tzinfo=UTC))
    by_request: dict[str, list[str]] = {}
    for row in rows:
        by_request.setdefault(row[1], []).append(row[3])
    assert by_request == {
        recorded.id: ["requested", "warned", "confirmed", "revoked"],
        second.id: ["requested", "warned"],
    }
