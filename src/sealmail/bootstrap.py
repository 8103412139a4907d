"""First-run set-up: directories, master key, development certificates, schema, first tenant."""

from __future__ import annotations

from dataclasses import dataclass

from sealmail.app import build_services
from sealmail.config import Settings
from sealmail.crypto.devcert import create_dev_certificates
from sealmail.crypto.vault import LocalKeyFile
from sealmail.store import db, migrate

DEV_DOMAIN = "clinic.example"


@dataclass
class InitResult:
    created_key: bool
    created_certs: bool
    tenant_id: str | None
    api_key: str | None


def initialize(settings: Settings, *, first_tenant: str | None = "Demo Clinic") -> InitResult:
    """Idempotent: creates only what is missing, migrates the schema to head."""
    settings.home.mkdir(parents=True, exist_ok=True)
    keyfile = settings.resolved_master_key_file
    created_key = False
    if not keyfile.exists():
        LocalKeyFile.create(keyfile)
        created_key = True
    created_certs = False
    if settings.smtp_tls_cert is None and not settings.resolved_tls_cert.exists():
        create_dev_certificates(
            settings.resolved_tls_cert.parent,
            ["localhost", settings.smtp_hostname, "127.0.0.1"],
        )
        created_certs = True
    engine = db.create_engine(
        settings.resolved_database_url,
        synchronous=settings.sqlite_synchronous,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        migrate.upgrade(engine)
        services = build_services(settings, engine)
        tenant_id = api_key = None
        if first_tenant and not services.tenancy.list_tenants():
            tenant_id = services.tenancy.create_tenant(first_tenant, actor="init")
            services.sender_domains.add(tenant_id, DEV_DOMAIN, actor="init", verified=True)
            _, api_key = services.tenancy.create_api_key(
                tenant_id, "first key", ["send", "read", "admin"], actor="init"
            )
        return InitResult(created_key, created_certs, tenant_id, api_key)
    finally:
        engine.dispose()
