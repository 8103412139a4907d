"""Datetimes a client gives, in a query or a body, on SQLite and PostgreSQL: one without a
timezone offset, and one at the edge of what a ``datetime`` holds, are 422 problems naming
the parameter, with nothing stored.

Before, a naive ``since`` (``GET /v1/messages?since=2026-01-01``) reached the UTC columns'
own check and ``0001-01-01T00:00:00+01:00`` overflowed converting to UTC: both 500s, on
the message and event searches and on ``send_at``/``expires_at`` of a new message.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.intake.api.app import create_api
from sealmail.store.tables import messages
from sealmail.suppressions.tables import suppressions

HOSTILE = [
    "2026-01-01T09:00:00",  # no offset
    "2026-01-01",  # a date: no time, no offset
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "9999-12-31T23:59:59Z",  # fits, but a day added later would not
]
MESSAGE = {"from": "noreply@clinic.example", "to": ["patient@example.net"], "text": "Hello"}


@pytest.fixture
def client(services: Services) -> TestClient:
    return TestClient(create_api(services), raise_server_exceptions=False)


def count(services: Services, table: sa.Table) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/messages", "since"),
        ("GET", "/v1/messages", "until"),
        ("GET", "/v1/events", "since"),
        ("GET", "/v1/reports/delivery.csv", "since"),
        ("GET", "/v1/evidence/reports/delivery", "until"),
        ("POST", "/v1/messages", "send_at"),
        ("POST", "/v1/messages", "expires_at"),
        ("POST", "/v1/suppressions", "expires_at"),
    ],
)
def test_a_naive_or_out_of_range_datetime_is_a_422_naming_it(
    client: TestClient, services: Services, tenant: TenantFixture, method: str, path: str, field: str
) -> None:
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    for value in HOSTILE:
        if method == "GET":
            query: dict[str, Any] = {"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"}
            r = client.get(path, params={**query, field: value}, headers=auth)
        else:
            body = MESSAGE if path == "/v1/messages" else {"address": "patient@example.net"}
            r = client.post(path, json={**body, field: value}, headers=auth)
        assert r.status_code == 422, (field, value, r.status_code, r.text[:300])
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == field, r.json()
    assert count(services, messages) == 0
    assert count(services, suppressions) == 0
