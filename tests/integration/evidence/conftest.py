"""Reuse the delivery fixtures (loopback DNS, test CA, MX sinks); a scratch database to restore into."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import _pg_admin_url
from tests.integration.delivery.conftest import ca, dns, mx

from sealmail.store import db

__all__ = ["ca", "dns", "mx", "scratch_url"]


@pytest.fixture
def scratch_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database on the same engine as the test's, dropped afterwards."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    admin = sa.create_engine(db.normalize_url(_pg_admin_url()), isolation_level="AUTOCOMMIT")
    name = f"sealmail_scratch_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield db_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
