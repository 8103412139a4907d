"""Shared fixtures: settings, a migrated database on SQLite and PostgreSQL, a tenant.

PostgreSQL: ``SEALMAIL_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test).
Each pytest worker creates its own database there and drops it at the end; tests that
need PostgreSQL skip with the reason when no server answers.
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sealmail.app import Services, build_services
from sealmail.config import Settings
from sealmail.crypto import dkim
from sealmail.crypto.vault import LocalKeyFile
from sealmail.schema import metadata
from sealmail.store import db, migrate
from sealmail.tenancy.service import Principal

pytest_plugins = ["tests.support.hipaa_results"]

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"

# A developer's own SEALMAIL_* settings (ports, home, database) must not leak into tests.
# Kept: the variables that configure the test run itself.
_TEST_ENV = ("SEALMAIL_TEST_POSTGRES_URL", "SEALMAIL_SCREENSHOT_DIR")
for _name in list(os.environ):
    if _name.startswith("SEALMAIL_") and _name not in _TEST_ENV:
        del os.environ[_name]
os.environ["SEALMAIL_CONFIG"] = "/nonexistent/sealmail.toml"

# The suite's HTTP clients wait up to 30 s for an answer instead of httpx's 5 s: on a CI machine
# whose 2 cores are shared, rendering a page has taken over 5 s (a ReadTimeout that says nothing
# about the product).  A server that never answers still fails the test, only later.
for _client in (httpx.Client, httpx.AsyncClient):
    _defaults = _client.__init__.__kwdefaults__
    assert _defaults is not None and "timeout" in _defaults, "httpx changed how Client takes its timeout"
    _defaults["timeout"] = httpx.Timeout(30.0)

# Each test builds an app (a few hundred routes and their pydantic validators) and its services;
# with CPython's default thresholds (700, 10, 10) the collector ran so often over that churn that
# it took 15-25 % of the workers' CPU.  It still runs, less often (issue 14).
gc.set_threshold(50_000, 20, 100)


def pytest_configure(config: pytest.Config) -> None:
    # A hook, not an import-time call: bench/ imports this file as a plain module and measures
    # the product's own CPU, adapters built per app included.  Both build once what the
    # product builds once per process and the tests rebuilt per test or per call.
    from tests.support import adapter_cache, cli_command

    adapter_cache.install()
    cli_command.install()


@pytest.fixture(autouse=True)
def _pooled_dkim_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sending domains get RSA keys from the worker's pool (``tests/support/dkim_keys.py``)."""
    # Imported here: bench/intake_cpu.py imports this file as a top-level ``conftest``, where
    # the ``tests`` package is not importable.
    from tests.support.dkim_keys import POOL

    POOL.start_test()
    monkeypatch.setattr(dkim, "generate_key", POOL.generate_key)


def _pg_admin_url() -> str:
    return os.environ.get("SEALMAIL_TEST_POSTGRES_URL", PG_DEFAULT)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh, migrated PostgreSQL database for this pytest worker, or None."""
    admin_url = _pg_admin_url()
    try:
        admin = sa.create_engine(db.normalize_url(admin_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        _pg_unavailable.append(f"{admin_url}: {type(exc).__name__}")
        yield None
        return
    worker_id = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"sealmail_test_{worker_id}_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    engine = db.create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


_pg_unavailable: list[str] = []


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = db.create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """Each test gets an empty, migrated database on each engine."""
    if request.param == "sqlite":
        target = tmp_path / "sealmail.db"
        shutil.copy(sqlite_template, target)
        yield f"sqlite:///{target}"
        return
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip(
            f"PostgreSQL not reachable ({'; '.join(_pg_unavailable)}); set SEALMAIL_TEST_POSTGRES_URL"
        )
    _empty_tables(request.getfixturevalue("pg_cleaner"))
    yield url


@pytest.fixture(scope="session")
def pg_cleaner(pg_database: str | None) -> Iterator[sa.Engine]:
    """One engine per worker for emptying its PostgreSQL database between tests."""
    assert pg_database is not None
    engine = db.create_engine(pg_database)
    yield engine
    engine.dispose()


# Which tables hold rows: one round trip instead of touching all of them.
@functools.cache
def _rows_probe() -> sa.TextClause:
    return sa.text(
        " UNION ALL ".join(
            f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")" for t in metadata.sorted_tables
        )
    )


def _empty_tables(engine: sa.Engine) -> None:
    """Delete the rows the last test left, children before parents.

    Not ``TRUNCATE`` of every table: it swaps each table's files and took 0.5-1 s per test
    (84 tables), where deleting a few rows from the handful of tables a test wrote takes
    milliseconds.
    """
    with engine.begin() as conn:
        # Triggers off for the clean-up only: the consent ledger's refuses every DELETE (its
        # rows are evidence); the tests' superuser may set this, the product's role need not.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        dirty = {row[0] for row in conn.execute(_rows_probe())}
        for table in reversed(metadata.sorted_tables):
            # A fixture of the schema (the key directory's change counter) is not test data.
            if table.name in dirty and not table.info.get("fixture"):
                conn.execute(sa.delete(table))


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "sealmail.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


def make_settings(home: Path, database_url: str, **overrides: object) -> Settings:
    key = home / "master.key"
    if not key.exists():
        LocalKeyFile.create(key)
    values: dict[str, object] = {
        "home": home,
        "database_url": database_url,
        "sqlite_synchronous": "NORMAL",
        "api_port": 0,
        "smtp_port": 0,
        "capture_port": 0,
        # No bounce listener unless a test asks for one (then on port 0): tests run in
        # parallel, and without it return paths stay the sender's own.
        "smtp_inbound_port": None,
        "allow_loopback_fetch": True,
        "log_level": "warning",
        # Cheap hashes keep fixtures fast; production uses argon2-cffi's defaults.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        # Workers would otherwise ask api.osv.dev (sockets are loopback-only); tests that want the
        # scheduled refresh set it, against the loopback OSV server.
        "osv_refresh_minutes": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.close()


@dataclass
class TenantFixture:
    id: str
    api_key: str
    principal: Principal
    domain: str


def make_tenant(svc: Services, name: str = "Clinic", domain: str = "clinic.example") -> TenantFixture:
    tenant_id = svc.tenancy.create_tenant(name, actor="test")
    svc.sender_domains.add(tenant_id, domain, actor="test", verified=True)
    _, key = svc.tenancy.create_api_key(tenant_id, "test", ["send", "read", "admin"], actor="test")
    return TenantFixture(tenant_id, key, svc.tenancy.authenticate(key), domain)


@pytest.fixture
def tenant(services: Services) -> TenantFixture:
    return make_tenant(services)
