"""Fixtures for template tests: the API with the templates router, tenant helpers.

Until ``create_api`` includes the templates router, the fixture adds it with an auth
dependency built like ``create_api``'s ``need`` (bearer key → principal → scope check).
No ``from __future__ import annotations``: FastAPI reads the closures' ``Annotated``
dependencies at definition time.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.intake.api.app import create_api


def with_templates(services: Services) -> Any:
    """The API app (templates and bulk routes are part of it)."""
    return create_api(services)


@pytest.fixture
def client(services: Services) -> TestClient:
    return TestClient(with_templates(services), raise_server_exceptions=False)


def auth(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


APPOINTMENT = {
    "name": "appointment",
    "subject": "Appointment on {{ when }}",
    "html": "<style>p{margin:0}</style><p>Dear {{ first_name }}, see you on {{ when }}.</p>"
    '<p><a href="https://portal.clinic.example/a/{{ ref }}">Manage appointment</a></p>',
}
