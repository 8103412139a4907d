"""Composition root: the only place that reads settings and builds objects.

``build_services`` builds what every role shares; the ``build_*`` functions below build
what one role adds (the worker's transport and SecureLine, the gateway's report intake,
the portal's file shares).  Roles, the CLI and tests receive what is built here; no other
module reads ``Settings`` (``docs/layout.md``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit
from functools import cached_property

from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from sealmail.bounces.inbound import ReportIntake
from sealmail.bounces.return_path import KEY_PURPOSE, ReturnPathConfig, ReturnPathSigner, return_path_domain
from sealmail.config import Settings
from sealmail.crypto import smime
from sealmail.crypto.vault import LocalKeyFile
from sealmail.delivery.mta_sts import MtaStsFetcher
from sealmail.delivery.protect import SecureLine
from sealmail.delivery.smtp_client import OutboundTransport, SmartHost
from sealmail.delivery.worker import Worker
from sealmail.dlp.screening import Screener
from sealmail.limits.service import Limiter, MemoryLimiter
from sealmail.engagement.instrumenter import LinkInstrumenter
from sealmail.engagement.service import Engagement
from sealmail.files import chunks
from sealmail.files.blobstore import BlobStore, LocalDirectoryBlobStore
from sealmail.files.service import FileShares
from sealmail.messages.dsn import DsnSender
from sealmail.messages.personalize import Instrumenter, Personalizer, ReturnPaths
from sealmail.messages.service import Messages
from sealmail.net.dns import Resolver
from sealmail.net.http_client import SafeHttpClient
from sealmail.portal.holds import PortalHolds
from sealmail.portal.lifecycle import PortalLifecycle
from sealmail.secureline.identities import Identities
from sealmail.secureline.keydir import Discovery, KeyDirectory
from sealmail.secureline.sender_domains import SenderDomains
from sealmail.store import db
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Tenancy
from sealmail.tenancy.site_secrets import SiteSecrets
from sealmail.tlsrpt.mailer import QueueMail
from sealmail.tlsrpt.sender import StsFacts, TlsReportSender
from sealmail.tlsrpt.service import TlsReports


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

    # Built on first use (each reads a site secret or makes a directory): a role that never
    # needs one never pays for it.
    @cached_property
    def file_shares(self) -> FileShares:
        return build_file_shares(self)

    @cached_property
    def engagement(self) -> Engagement:
        return build_engagement(self)

    @cached_property
    def return_path_config(self) -> ReturnPathConfig:
        return return_path_config(self.settings)

    @cached_property
    def report_intake(self) -> ReportIntake:
        return build_report_intake(self)

    @cached_property
    def tlsrpt(self) -> TlsReports:
        return TlsReports(self.engine)


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
    return return_path_domain(return_path_config(settings), domain), settings.smtp_hostname


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


# HKDF purpose of the link-token key (``SiteSecrets.key``).
LINKS_KEY = "links"


def password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)


def return_path_config(settings: Settings) -> ReturnPathConfig:
    return ReturnPathConfig(settings.return_path_domain, settings.return_path_label, settings.fbl_local_part)


def build_signer(services: Services, settings: Settings | None = None) -> ReturnPathSigner:
    settings = settings or services.settings
    return ReturnPathSigner(return_path_config(settings), lambda: services.site_secrets.key(KEY_PURPOSE))


def build_return_paths(services: Services, settings: Settings | None = None) -> ReturnPaths | None:
    """The worker's return-path signer, or None while nothing would receive the bounces."""
    settings = settings or services.settings
    # Without a listener for them (here or, with an explicit domain, elsewhere) rewritten
    # return paths would send every asynchronous bounce into the void; the sender's own
    # address keeps receiving them until bounce intake is set up.
    if not settings.verp_enabled or (settings.smtp_inbound_port is None and not settings.return_path_domain):
        return None
    return build_signer(services, settings)


def build_report_intake(services: Services) -> ReportIntake:
    return ReportIntake(services.engine, build_signer(services))


def build_engagement(services: Services, settings: Settings | None = None) -> Engagement:
    settings = settings or services.settings
    return Engagement(
        services.engine,
        services.keyring,
        lambda: services.site_secrets.key(LINKS_KEY),
        settings.resolved_portal_url,
    )


def build_instrumenter(services: Services, settings: Settings | None = None) -> Instrumenter | None:
    # Always on: the instrumenter applies only to broadcast messages (unsubscribe headers)
    # and to tenants that opted in to tracking (engagement/policy.py).
    return LinkInstrumenter(build_engagement(services, settings))


def build_file_shares(services: Services, blobs: BlobStore | None = None) -> FileShares:
    s = services.settings
    return FileShares(
        services.engine,
        services.keyring,
        blobs or LocalDirectoryBlobStore(s.blob_dir or s.home / "blobs"),
        services.messages,
        portal_url=s.resolved_portal_url,
        message_id_domain=s.smtp_hostname,
        chunk_size=s.file_chunk_bytes or chunks.DEFAULT_CHUNK_SIZE,
        expiry_days=s.portal_expiry_days,
    )


def build_portal_lifecycle(services: Services) -> PortalLifecycle:
    return PortalLifecycle(services.engine, password_hasher(services.settings))


def build_transport(settings: Settings, capture_port: int | None = None) -> OutboundTransport:
    resolver = Resolver(settings.nameservers() or None, timeout=settings.dns_timeout_seconds)
    ca_file: str | None = str(settings.tls_ca_file) if settings.tls_ca_file else None
    relay_all: tuple[str, int] | None = None
    smarthost: SmartHost | None = None
    if settings.outbound_mode == "capture":
        relay_all = (settings.capture_host, capture_port or settings.capture_port)
        if ca_file is None and settings.dev_ca_file.exists():
            ca_file = str(settings.dev_ca_file)
    elif settings.outbound_mode == "smarthost":
        smarthost = SmartHost(
            host=settings.smarthost_host,
            port=settings.smarthost_port,
            username=settings.smarthost_username or None,
            password=settings.smarthost_password or None,
            tls_level=settings.smarthost_tls,
        )
    sts = None
    if settings.mta_sts_enabled and settings.outbound_mode == "mx":
        sts = MtaStsFetcher(resolver, ca_file=ca_file, allow_loopback=settings.allow_loopback_fetch)
    return OutboundTransport(
        ehlo_hostname=settings.smtp_hostname,
        resolver=resolver,
        mta_sts=sts,
        dane=settings.dane_enabled and settings.outbound_mode == "mx",
        ca_file=ca_file,
        max_connections_per_destination=settings.destination_max_connections,
        smarthost=smarthost,
        relay_all_to=relay_all,
        port=settings.mx_port,
        command_timeout=min(300.0, settings.lease_seconds * 0.8),
    )


def build_worker(
    services: Services,
    transport: OutboundTransport,
    settings: Settings | None = None,
    name: str | None = None,
) -> Worker:
    """A worker wired the way production runs it: SecureLine, DKIM, optional DSNs."""
    settings = settings or services.settings
    secureline = SecureLine(
        services.engine,
        services.keydir,
        services.identities,
        services.portal,
        sign=settings.dkim_sign,
        discovery=services.discovery if settings.discovery_enabled else None,
        personalizer=Personalizer(
            return_paths=build_return_paths(services, settings),
            instrumenter=build_instrumenter(services, settings),
        ),
    )
    dsn = DsnSender(services.messages, settings.smtp_hostname) if settings.dsn_enabled else None
    return Worker(services.engine, services.keyring, transport, settings, secureline, name=name, dsn=dsn)


def build_tlsrpt_sender(services: Services) -> TlsReportSender:
    """The daily RFC 8460 job: DNS for ``_smtp._tls``, the SSRF-safe client for https
    endpoints, the queue (DKIM-signed by the worker) for mailto ones."""
    s = services.settings
    resolver = Resolver(s.nameservers() or None, timeout=s.dns_timeout_seconds)
    ca_file = str(s.tls_ca_file) if s.tls_ca_file else None
    client = SafeHttpClient(resolver, allow_loopback=s.allow_loopback_fetch, timeout=15.0, ca_file=ca_file)
    fetcher = MtaStsFetcher(resolver, ca_file=ca_file, allow_loopback=s.allow_loopback_fetch)

    async def sts(domain: str) -> StsFacts | None:
        policy = await fetcher.get_policy(domain)
        if policy is None:
            return None
        lines = ["version: STSv1", f"mode: {policy.mode.value}", *(f"mx: {m}" for m in policy.mx)]
        return StsFacts([*lines, f"max_age: {policy.max_age}"], list(policy.mx))

    return TlsReportSender(
        services.tlsrpt, txt=resolver.txt, http=client, mail=QueueMail(services.messages), sts=sts
    )
