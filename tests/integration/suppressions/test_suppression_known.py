"""Intake answers "not on the list" from memory (``suppressions.known``), never "on it".

An entry written in this process counts at once; one written elsewhere (here: a row put
in with SQL, as another process would) within ``known.SECONDS``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.suppressions.conftest import send
from tests.integration.suppressions.test_suppression_intake import suppress
from tests.support.sql_log import sql_log

from sealmail.app import Services
from sealmail.suppressions.known import known
from sealmail.suppressions.tables import suppressions as sup


def statuses(resp: Any) -> dict[str, str]:
    assert resp.status_code == 202, resp.text
    return {r["email"]: r["status"] for r in resp.json()["recipients"]}


def test_no_lookup_while_nobody_is_on_the_list(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "jane@example.net")
    assert statuses(send(api, tenant, ["a@example.net"])) == {"a@example.net": "queued"}
    with sql_log(services.engine) as log:
        assert statuses(send(api, tenant, ["b@example.net"])) == {"b@example.net": "queued"}
        assert statuses(send(api, tenant, ["jane@example.net"])) == {"jane@example.net": "rejected"}
    # The first send read nothing (the set was fresh), the second looked Jane up.
    assert log.reads_of("suppressions") == 1


def test_an_entry_written_in_this_process_counts_at_once(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    assert statuses(send(api, tenant, ["jane@example.net"])) == {"jane@example.net": "queued"}
    suppress(services, tenant, "Jane@example.net")  # the set read by the send is still fresh
    assert statuses(send(api, tenant, ["jane@example.net"])) == {"jane@example.net": "rejected"}


def test_an_entry_written_elsewhere_counts_once_the_set_is_stale(
    api: TestClient, services: Services, tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(known, "_clock", lambda: clock[0])
    assert statuses(send(api, tenant, ["jane@example.net"])) == {"jane@example.net": "queued"}
    now = datetime.now(UTC)
    with services.engine.begin() as conn:  # another process's write: this one is not told
        conn.execute(
            sa.insert(sup).values(
                id="sup_elsewhere",
                tenant_id=tenant.id,
                stream="*",
                address="jane@example.net",
                reason="manual",
                source="test",
                created_by="test",
                created_at=now,
                updated_at=now,
            )
        )
    clock[0] += known.seconds
    assert statuses(send(api, tenant, ["jane@example.net"])) == {"jane@example.net": "rejected"}
