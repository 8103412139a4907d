"""Composition root: the only place that reads settings and builds services."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from sealmail.bounces.return_path import return_path_domain
from sealmail.config import Settings
from sealmail.crypto import smime
from sealmail.crypto.vault import LocalKeyFile
from sealmail.dlp.screening import Screener
from sealmail.limits.service import Limiter, MemoryLimiter
from sealmail.messages.service import Messages
from sealmail.net.dns import Resolver
from sealmail.net.http_client import SafeHttpClient
from sealmail.portal.holds import PortalHolds
from sealmail.secureline.identities import Identities
from sealmail.secureline.keydir import Discovery, KeyDirectory
from sealmail.secureline.sender_domains import SenderDomains
from sealmail.store import db
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Tenancy
from sealmail.tenancy.site_secrets import SiteSecrets


@dataclass
class Services:
    settings: Settings
    engine: Engine
    keyfile: LocalKeyFile
    keyring: Keyring
    tenancy: Tenancy
    messages: Messages
    keydir: KeyDirectory
    identities: Identities
    portal: PortalHolds
    screener: Screener
    discovery: Discovery
    site_secrets: SiteSecrets
    limiter: Limiter
    sender_domains: SenderDomains

    def close(self) -> None:
        self.engine.dispose()


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    engine = engine or db.create_engine(
        settings.resolved_database_url, synchronous=settings.sqlite_synchronous
    )
    keyfile = LocalKeyFile(settings.resolved_master_key_file)
    keyring = Keyring(engine, keyfile)
    tenancy = Tenancy(
        engine,
        keyring,
        PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib),
    )
    screener = Screener(tenancy)
    messages = Messages(
        engine,
        keyring,
        tenancy,
        settings.idempotency_ttl_seconds,
        screener,
        broadcast_refusal=broadcast_refusal(settings),
    )

    def trust() -> smime.TrustStore:
        store = smime.TrustStore.system()
        if settings.smime_trust_file is not None:
            extra = smime.TrustStore.from_pem(settings.smime_trust_file.read_bytes())
            store = store.with_anchors(*extra.anchors)
        return store

    keydir = KeyDirectory(engine, trust)
    resolver = Resolver(settings.nameservers() or None, timeout=settings.dns_timeout_seconds)
    # All discovery goes through the one SSRF-safe client.
    client = SafeHttpClient(
        resolver,
        allow_loopback=settings.allow_loopback_fetch,
        timeout=5.0,
        ca_file=str(settings.tls_ca_file) if settings.tls_ca_file else None,
    )
    discovery = Discovery(keydir, client, settings.keyserver_url or None)
    identities = Identities(engine, keyring)
    portal = PortalHolds(engine, settings.resolved_portal_url, settings.portal_expiry_days)
    return Services(
        settings,
        engine,
        keyfile,
        keyring,
        tenancy,
        messages,
        keydir,
        identities,
        portal,
        screener,
        discovery,
        SiteSecrets(engine, keyfile),
        build_limiter(settings, engine),
        SenderDomains(tenancy, identities, lambda domain: _return_path(settings, domain)),
    )


def build_limiter(settings: Settings, engine: Engine) -> Limiter:
    """Counters must be shared wherever several processes serve the API: on PostgreSQL the
    database already is that shared store (no extra service to run); SQLite is one process."""
    store = settings.rate_limit_store
    if store == "auto":
        store = "database" if engine.dialect.name == "postgresql" else "memory"
    if store == "memory":
        return MemoryLimiter()
    from sealmail.limits.database import DatabaseLimiter

    return DatabaseLimiter(engine)


def _return_path(settings: Settings, domain: str) -> tuple[str, str] | None:
    """The return-path domain and the inbound MX host to publish, when return paths are signed."""
    if not settings.verp_enabled:
        return None
    return return_path_domain(settings, domain), settings.smtp_hostname


def broadcast_refusal(settings: Settings) -> str | None:
    """Why broadcast mail must be refused here, or None.

    Broadcast mail carries a one-click List-Unsubscribe built on the public URL, and
    RFC 8058 §3.1 requires it to be https (mailbox providers ignore or distrust plain
    http).  Development — the capture sink, or a loopback URL nobody outside can reach —
    may use http.
    """
    url = urlsplit(settings.resolved_portal_url)
    if url.scheme == "https" or settings.outbound_mode == "capture" or _loopback(url.hostname or ""):
        return None
    return (
        f"the broadcast stream needs an https public URL for its RFC 8058 one-click unsubscribe "
        f"link, and {settings.resolved_portal_url} is not; set SEALMAIL_PUBLIC_URL (or "
        "SEALMAIL_PORTAL_BASE_URL) to an https URL"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
