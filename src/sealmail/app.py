"""Composition root: the only place that reads settings and builds objects.

Size: one file on purpose: it is the composition root, the one place by design that reads
settings and builds objects (``docs/layout.md``); split, that one place would become several.

``build_services`` builds what every role shares; the ``build_*`` functions below build
what one role adds (the worker's transport and SecureLine, the gateway's report intake,
the portal's file shares).  Roles, the CLI and tests receive what is built here; no other
module reads ``Settings`` (``docs/layout.md``).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from sealmail.bounces.inbound import ReportIntake
from sealmail.bounces.listener import ReportListener
from sealmail.bounces.return_path import KEY_PURPOSE, ReturnPathConfig, ReturnPathSigner, return_path_domain
from sealmail.config import ConfigError, Settings
from sealmail.crypto import smime
from sealmail.crypto.vault import LocalKeyFile
from sealmail.delivery.bell import bell_for
from sealmail.delivery.mta_sts import MtaStsFetcher
from sealmail.delivery.options import WorkerOptions
from sealmail.delivery.protect import SecureLine
from sealmail.delivery.smtp_client import OutboundTransport, SmartHost
from sealmail.delivery.worker import Worker
from sealmail.dlp.screening import Screener
from sealmail.domain.intake_limits import IntakeLimits
from sealmail.domain.tls_policy import Stream
from sealmail.engagement.instrumenter import LinkInstrumenter
from sealmail.engagement.service import Engagement
from sealmail.evidence import working_hours
from sealmail.evidence.advisory_refresh import AdvisoryRefresh
from sealmail.evidence.dependencies import DependencyAudit
from sealmail.evidence.drill_schedule import DrillSchedule
from sealmail.evidence.mailing import AnchorMailer
from sealmail.evidence.osv import OsvClient
from sealmail.evidence.schedule import EvidenceSchedule
from sealmail.evidence.service import Evidence
from sealmail.evidence.timestamps import Timestamper
from sealmail.files import chunks
from sealmail.files.blobstore import BlobStore, LocalDirectoryBlobStore
from sealmail.files.service import FileShares
from sealmail.forms.service import Forms
from sealmail.forms.submissions import FormSubmissions
from sealmail.intake.api.options import ApiLimits, ApiOptions
from sealmail.intake.smtp import GatewayOptions, GatewayServices, SmtpGateway
from sealmail.limits import tables as limits_tables
from sealmail.limits.service import FailureThrottle, Limiter, MemoryLimiter
from sealmail.marketing import consent as marketing_consent
from sealmail.marketing import service as marketing
from sealmail.marketing.form_consent import FormConsent
from sealmail.marketing.gate import SendGate
from sealmail.messages.dsn import DsnSender
from sealmail.messages.personalize import Instrumenter, Personalizer, ReturnPaths
from sealmail.messages.service import Messages
from sealmail.net.address_policy import is_loopback_host
from sealmail.net.destination import DestinationVetter
from sealmail.net.dns import Resolver
from sealmail.net.http_client import SafeHttpClient
from sealmail.portal.access import PortalPolicy
from sealmail.portal.holds import PortalHolds
from sealmail.portal.lifecycle import PortalLifecycle
from sealmail.portal.options import PortalOptions
from sealmail.secureline.discovery import Discovery
from sealmail.secureline.identities import Identities
from sealmail.secureline.keydir import KeyDirectory
from sealmail.secureline.sender_domains import SenderDomains
from sealmail.sms.capture import CaptureProvider
from sealmail.sms.notices import PortalTexts
from sealmail.sms.service import Texting
from sealmail.sms.smpp.client import SmppOptions
from sealmail.sms.smpp_provider import SmppProvider
from sealmail.sms.twilio import TwilioOptions, TwilioProvider
from sealmail.smtpd.connection_gate import IpNetwork
from sealmail.smtpd.server import ListenerOptions, server_tls_context
from sealmail.store import db
from sealmail.suppressions.service import Suppressions
from sealmail.templates.bulk import BulkSender
from sealmail.templates.store import TemplateStore
from sealmail.tenancy.decisions import Decisions
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.rotation import KeyRotation, SealedColumns
from sealmail.tenancy.service import Tenancy
from sealmail.tenancy.site_secrets import SiteSecrets
from sealmail.tlsrpt.mailer import QueueMail
from sealmail.tlsrpt.scheduler import DailyRuns, TlsReportScheduler
from sealmail.tlsrpt.sender import StsFacts, TlsReportSender
from sealmail.tlsrpt.service import TlsReports
from sealmail.users.alerts import OwnerMailer
from sealmail.users.keys import UserKeys
from sealmail.users.model import Clock
from sealmail.users.oidc import OidcClient
from sealmail.users.passkeys import RelyingParty
from sealmail.users.service import Users
from sealmail.users.sso import SingleSignOn
from sealmail.webhooks.alerts import DisabledNotifier
from sealmail.webhooks.dispatcher import Dispatcher, DispatcherConfig
from sealmail.webhooks.endpoints import WebhookEndpoints

if TYPE_CHECKING:
    # Only the API role serves FastAPI apps: the CLI and worker processes never import the
    # framework or the console's pages (their import was most of a process's start-up).
    from fastapi import FastAPI

    from sealmail.console.web import ConsoleSection


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
    def key_rotation(self) -> KeyRotation:
        return KeyRotation(self.keyring, sealed_columns())

    @cached_property
    def return_path_config(self) -> ReturnPathConfig:
        return return_path_config(self.settings)

    @cached_property
    def report_intake(self) -> ReportIntake:
        return build_report_intake(self)

    # -- what the HTTP adapters are handed --------------------------------------------------
    @cached_property
    def api_options(self) -> ApiOptions:
        return api_options(self.settings)

    @cached_property
    def portal_options(self) -> PortalOptions:
        return portal_options(self.settings)

    @cached_property
    def password_hasher(self) -> PasswordHasher:
        return password_hasher(self.settings)

    @property
    def message_id_domain(self) -> str:
        return self.settings.smtp_hostname

    @property
    def public_per_minute(self) -> int:
        """The per-address limit of the public pages (portal, tracking, unsubscribe)."""
        return self.settings.public_rate_limit_per_minute

    @property
    def max_request_bytes(self) -> int:
        """The largest request body either HTTP role reads (``SEALMAIL_MAX_REQUEST_BYTES``)."""
        return self.settings.max_request_bytes

    @property
    def sms_callback_per_minute(self) -> int:
        """The per-address limit of the SMS provider's callbacks (``/sms``)."""
        return self.settings.sms_callback_rate_limit_per_minute

    @cached_property
    def portal_lifecycle(self) -> PortalLifecycle:
        return build_portal_lifecycle(self)

    @cached_property
    def suppressions(self) -> Suppressions:
        return Suppressions(self.engine)

    @cached_property
    def template_store(self) -> TemplateStore:
        return TemplateStore(self.engine)

    @cached_property
    def bulk_sender(self) -> BulkSender:
        return BulkSender(
            self.engine,
            self.messages,
            message_id_domain=self.settings.smtp_hostname,
            max_recipients=self.settings.max_recipients,
        )

    @cached_property
    def webhook_endpoints(self) -> WebhookEndpoints:
        """Endpoints as the management API and CLI configure them (destinations vetted)."""
        return build_webhook_endpoints(self)

    def dns_resolver(self) -> Resolver:
        """A new resolver (each app builds its own, like each role)."""
        return Resolver(self.settings.nameservers() or None, timeout=self.settings.dns_timeout_seconds)

    def webhook_dispatcher(self) -> Dispatcher:
        return build_webhook_dispatcher(self)

    @cached_property
    def evidence(self) -> Evidence:
        return build_evidence(self)

    @cached_property
    def tlsrpt(self) -> TlsReports:
        return TlsReports(self.engine)

    @cached_property
    def marketing(self) -> marketing.Marketing:
        return build_marketing(self)

    @cached_property
    def forms(self) -> Forms:
        return Forms(self.engine, self.tenancy, self.settings.resolved_portal_url)

    @cached_property
    def form_submissions(self) -> FormSubmissions:
        return build_form_submissions(self)

    @cached_property
    def texting(self) -> Texting:
        """Contacts, consent and the outbox; the worker's sender has the provider."""
        return Texting(self.engine, self.keyring, self.tenancy)

    @cached_property
    def portal_texts(self) -> PortalTexts | None:
        """Portal notices, codes and reminders by SMS (queued for the worker's SMS loop);
        None while no provider is configured, so nothing offers texts nobody would send."""
        if self.settings.sms_provider == "none":
            return None
        return PortalTexts(self.texting, refuses_sms=self.evidence.preferences.refuses_sms)

    @cached_property
    def sms_callbacks(self) -> FastAPI | None:
        """The HTTP provider's signed callbacks, mounted at ``/sms`` on the public site."""
        from sealmail.sms.web import create_callbacks

        provider = twilio_provider(self)
        if provider is None:
            return None
        return create_callbacks(self.texting, provider, self.settings.resolved_portal_url)


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    engine = engine or db.create_engine(
        settings.resolved_database_url,
        synchronous=settings.sqlite_synchronous,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
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


def sealed_columns() -> list[SealedColumns]:
    """Every column holding a data key wrapped by a tenant key (``tenancy.rotation``)."""
    from sealmail.engagement.tables import tracked_links
    from sealmail.files.tables import file_shares
    from sealmail.forms.tables import form_submissions
    from sealmail.marketing.tables import mkt_contacts
    from sealmail.sms.tables import sms_texts
    from sealmail.store.tables import messages, tenant_identities
    from sealmail.webhooks.tables import webhook_endpoints

    return [
        SealedColumns(messages, "id", "tenant_key_id", "wrapped_data_key"),
        SealedColumns(form_submissions, "id", "key_id", "wrapped_key"),
        SealedColumns(sms_texts, "id", "key_id", "wrapped_key"),
        SealedColumns(file_shares, "id", "tenant_key_id", "wrapped_data_key"),
        SealedColumns(tenant_identities, "id", "tenant_key_id", "wrapped_data_key"),
        SealedColumns(tracked_links, "message_id", "tenant_key_id", "wrapped_key", "/tracked-links"),
        SealedColumns(mkt_contacts, "id", "key_id", "wrapped_key"),
        SealedColumns(webhook_endpoints, "secret_id", "secret_key_id", "secret_wrapped_key"),
        SealedColumns(
            webhook_endpoints, "previous_secret_id", "previous_secret_key_id", "previous_secret_wrapped_key"
        ),
    ]


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
    if url.scheme == "https" or settings.outbound_mode == "capture" or is_loopback_host(url.hostname or ""):
        return None
    return (
        f"the broadcast stream needs an https public URL for its RFC 8058 one-click unsubscribe "
        f"link, and {settings.resolved_portal_url} is not; set SEALMAIL_PUBLIC_URL (or "
        "SEALMAIL_PORTAL_BASE_URL) to an https URL"
    )


# HKDF purpose of the link-token key (``SiteSecrets.key``).
LINKS_KEY = "links"
# HKDF purpose of the root of the per-tenant blind-index keys of sensitive contact attributes.
MARKETING_BLIND_KEY = "marketing-blind"


def build_marketing(services: Services) -> marketing.Marketing:
    return marketing.build(
        services.engine,
        services.keyring,
        lambda: services.site_secrets.key(MARKETING_BLIND_KEY),
        services.messages,
        services.template_store,
        services.settings.smtp_hostname,
        OwnerMailer(services.engine, services.messages, services.settings.smtp_hostname),
    )


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


def build_report_intake(services: Services, settings: Settings | None = None) -> ReportIntake:
    return ReportIntake(services.engine, build_signer(services, settings))


def build_engagement(services: Services, settings: Settings | None = None) -> Engagement:
    settings = settings or services.settings
    return Engagement(
        services.engine,
        services.keyring,
        lambda: services.site_secrets.key(LINKS_KEY),
        settings.resolved_portal_url,
        # A one-click unsubscribe also revokes in the marketing consent ledger (issue 16).
        on_unsubscribe=marketing_consent.unsubscribed,
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
        plain=services.evidence.plain,
        preferences=services.evidence.preferences,
        texter=services.portal_texts,
    )
    dsn = DsnSender(services.messages, settings.smtp_hostname) if settings.dsn_enabled else None
    return Worker(
        services.engine,
        services.keyring,
        transport,
        worker_options(settings),
        secureline,
        name=name,
        dsn=dsn,
        # Marketing sends pass decide_send (consent, authorization, suppression, caps,
        # quiet hours) at every claim (issue 16).
        gates=[SendGate()],
        # Claims as soon as mail is queued after a quiet spell, not at the next idle poll.
        bell=bell_for(services.engine),
    )


# -- evidence (issue 15): proofs of delivery, audit anchors, reports ------------------------------
EVIDENCE_SECRET = "evidence"  # noqa: S105 — the name of a site-secret row, not a secret


def build_evidence(services: Services) -> Evidence:
    # Its own site-secret root, so no other purpose's key is ever derived from the anchor key's seed.
    return Evidence(
        services.engine,
        services.keyring,
        lambda purpose: services.site_secrets.key(purpose, EVIDENCE_SECRET),
        AnchorMailer(services.messages, services.settings.smtp_hostname),
        Timestamper(services.settings.evidence_tsa_url) if services.settings.evidence_tsa_url else None,
        services.settings.home / "test-results" / "hipaa-results.json",
        services.tenancy.update_settings,
        build_dependency_audit(services.settings),
    )


def build_drill_schedule(services: Services, owner: str) -> DrillSchedule | None:
    """The worker's scheduled restore drill, or None when ``restore_drill_minutes`` is 0."""
    s = services.settings
    if not s.restore_drill_minutes:
        return None
    # Every table on the shared metadata: the features imported here and the limits' counters
    # (``limits_tables``); the schedule refuses a drill when the database holds one missing here.
    return DrillSchedule(
        services.engine,
        limits_tables.metadata.sorted_tables,
        s.blob_dir or s.home / "blobs",
        timedelta(minutes=s.restore_drill_minutes),
        owner,
        services.evidence.anchor_recipients,
        s.restore_drill_scratch_url,
    )


def build_advisory_refresh(services: Services, owner: str) -> AdvisoryRefresh | None:
    """The worker's scheduled OSV refresh, or None when ``osv_refresh_minutes`` is 0."""
    minutes = services.settings.osv_refresh_minutes
    if not minutes:
        return None
    return AdvisoryRefresh(services.evidence.dependencies, services.engine, timedelta(minutes=minutes), owner)


def build_dependency_audit(s: Settings) -> DependencyAudit:
    """The lock file every pack audits and the OSV client that refreshes its advisories: the
    SSRF-safe client with the configured OSV host as the only host it may reach."""
    lock = s.evidence_lock_file or Path("requirements.lock").absolute()
    http = SafeHttpClient(
        Resolver(s.nameservers() or None, timeout=s.dns_timeout_seconds),
        allow_loopback=s.allow_loopback_fetch,
        timeout=s.osv_timeout_seconds,
        ca_file=str(s.tls_ca_file) if s.tls_ca_file else None,
        only_hosts=[urlsplit(s.osv_url).hostname or ""],
    )
    cache = s.home / "evidence" / "osv-advisories.json"
    return DependencyAudit(cache, lock, OsvClient(http, s.osv_url))


def build_evidence_schedule(services: Services) -> EvidenceSchedule:
    s = services.settings
    anchor = timedelta(minutes=s.evidence_anchor_minutes) if s.evidence_anchor_minutes else None
    purge = timedelta(minutes=s.retention_purge_minutes) if s.retention_purge_minutes else None
    return EvidenceSchedule(services.evidence, anchor, purge)


# -- secure forms (issue 17): hosted on the portal role at /f, delivered through SecureLine --
FORMS_KEY = "forms"  # HKDF purpose of the time-token and receipt key


def build_form_submissions(services: Services) -> FormSubmissions:
    return FormSubmissions(
        services.engine,
        services.keyring,
        services.messages,
        services.forms,
        lambda: services.site_secrets.key(FORMS_KEY),
        services.settings.smtp_hostname,
        # A ticked consent box with a purpose grants it in the marketing ledger (issue 16).
        consent=FormConsent(services.marketing.contacts),
    )


# -- secure texting (issue 17): one provider per worker, the outbox in sms_texts --------------
def twilio_provider(services: Services) -> TwilioProvider | None:
    s = services.settings
    if s.sms_provider != "twilio":
        return None
    options = TwilioOptions(
        s.twilio_account_sid,
        s.twilio_auth_token,
        s.twilio_base_url,
        status_callback=s.resolved_portal_url + "/sms/twilio/status",
    )
    resolver = services.dns_resolver()
    client = SafeHttpClient(
        resolver,
        allow_loopback=s.allow_loopback_fetch,
        allow_http=s.allow_loopback_fetch,
        timeout=15.0,
        ca_file=str(s.tls_ca_file) if s.tls_ca_file else None,
    )
    return TwilioProvider(options, client)


def build_texting_sender(services: Services) -> Texting:
    """The worker's ``Texting``: the same service with the configured provider attached."""
    s = services.settings
    texting = Texting(services.engine, services.keyring, services.tenancy)
    if s.sms_provider == "twilio":
        texting.provider = twilio_provider(services)
    elif s.sms_provider == "capture":
        texting.provider = CaptureProvider(texting)
    elif s.sms_provider == "smpp":
        options = SmppOptions(s.smpp_host, s.smpp_port, s.smpp_system_id, s.smpp_password)
        # Receipts and inbound texts on the session come back to this same service.
        texting.provider = SmppProvider(options, texting)
    return texting


# -- the console (issue 14): users with roles and MFA, served at /console on the API role --
CONSOLE_TOTP_KEY = "console-totp"  # HKDF purpose of the key TOTP seeds are sealed under


def console_url(settings: Settings) -> str:
    return (settings.public_url or f"http://{settings.api_host}:{settings.api_port}").rstrip("/") + "/console"


def build_users(services: Services, clock: Clock | None = None) -> Users:
    def seed_key() -> bytes:
        return services.site_secrets.key(CONSOLE_TOTP_KEY)

    alert = OwnerMailer(services.engine, services.messages, services.settings.smtp_hostname)
    users = Users(services.engine, password_hasher(services.settings), seed_key, clock=clock, alert=alert)
    users.rp = RelyingParty.for_url(console_url(services.settings))
    users.forget = services.tenancy.forget
    return users


def build_console_sections(services: Services, users: Users) -> list[ConsoleSection]:
    """Each feature's console pages (``ConsoleSection`` in the feature's ``web.py``)."""
    from sealmail.console import (
        evidence_pages,
        forms_pages,
        marketing_campaign_pages,
        marketing_pages,
        review_pages,
        sms_pages,
    )
    from sealmail.console.admin_domains import domains_section
    from sealmail.console.admin_lists import ListPages
    from sealmail.console.admin_tenant import TenantPages
    from sealmail.console.audit_export import AuditExport
    from sealmail.console.audit_pages import audit_section
    from sealmail.console.compose import ComposeOptions, compose_section
    from sealmail.console.marketing_contact_pages import section as marketing_contact_section
    from sealmail.console.outbox import Outbox
    from sealmail.console.reports import Reports
    from sealmail.console.templates_pages import templates_section
    from sealmail.console.trail_pages import MessageView, trail_section

    settings = services.settings
    compose = ComposeOptions(
        message_id_domain=settings.smtp_hostname,
        max_recipients=settings.max_recipients,
        max_file_bytes=settings.max_file_bytes,
    )
    view = MessageView(
        Reports(services.engine), Outbox(services.engine), services.portal_lifecycle,
        zone_of=lambda tenant_id: working_hours.read(services.engine, tenant_id).hours.time_zone,
    )  # fmt: skip
    return [
        compose_section(services.messages, view, compose, services.file_shares, services.texting),
        trail_section(view),
        TenantPages(
            services.tenancy, services.messages, services.screener, Decisions(services.engine)
        ).section(),
        audit_section(AuditExport(services.engine, build_evidence(services).keys.tenant)),
        domains_section(services.tenancy, services.sender_domains, services.dns_resolver),
        ListPages(services.suppressions, services.keydir, services.webhook_endpoints).section(),
        templates_section(services.template_store),
        evidence_pages.section(services.evidence),
        review_pages.section(services.evidence),
        marketing_pages.section(services.marketing),
        marketing_contact_section(services.marketing),
        marketing_campaign_pages.section(services.marketing),
        forms_pages.section(services.forms, services.form_submissions),
        sms_pages.section(services.texting),
    ]


def build_sso(services: Services, users: Users) -> SingleSignOn:
    """OpenID Connect sign-in: the OP is reached only through the SSRF-safe client (loopback
    only where ``allow_loopback_fetch`` says so, as in tests)."""
    s = services.settings
    resolver = Resolver(s.nameservers() or None, timeout=s.dns_timeout_seconds)
    ca_file = str(s.tls_ca_file) if s.tls_ca_file else None
    client = SafeHttpClient(resolver, allow_loopback=s.allow_loopback_fetch, timeout=10.0, ca_file=ca_file)
    return SingleSignOn(users, OidcClient(client), console_url(s) + "/sso/callback")


def build_console(services: Services, users: Users | None = None, sso: SingleSignOn | None = None) -> FastAPI:
    from sealmail.console.reports import Reports
    from sealmail.console.web import ConsoleOptions, create_console

    # Cookies get __Host- and Secure exactly when browsers reach the console over https.
    secure = urlsplit(console_url(services.settings)).scheme == "https"
    users = users or build_users(services)
    tenancy = services.tenancy
    keys = UserKeys(
        services.engine, tenancy.create_api_key, users.now, tenancy.create_smtp_credential, tenancy.forget
    )
    sections = build_console_sections(services, users)
    return create_console(
        users, Reports(services.engine), keys,
        ConsoleOptions(
            secure, services.limiter, services.settings.console_signin_rate_limit_per_minute,
            services.settings.console_rate_limit_per_minute, console_url(services.settings),
        ),
        sections,
        sso or build_sso(services, users),
    )  # fmt: skip


# -- the SMTP listeners (submission in intake/smtp, reports in bounces/listener.py) -----------


def build_server_tls(settings: Settings) -> ssl.SSLContext:
    """The listeners' STARTTLS context; unreadable files are a configuration error."""
    try:
        return server_tls_context(
            settings.resolved_tls_cert, settings.resolved_tls_key, settings.smtp_connector_client_ca
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"the SMTP gateway cannot load its TLS certificate/key ({type(exc).__name__}); "
            "set SEALMAIL_SMTP_TLS_CERT and SEALMAIL_SMTP_TLS_KEY (and "
            "SEALMAIL_SMTP_CONNECTOR_CLIENT_CA if used) to readable PEM files, "
            "or run `sealmail init`"
        ) from exc


def listener_options(settings: Settings, port: int, exempt: tuple[IpNetwork, ...] = ()) -> ListenerOptions:
    """Where an SMTP listener binds, what it advertises, and how many connections it holds."""
    return ListenerOptions(
        settings.smtp_host,
        port,
        settings.smtp_hostname,
        settings.smtp_max_message_bytes,
        settings.event_loop,
        max_connections=settings.smtp_max_connections,
        max_connections_per_client=settings.smtp_max_connections_per_client,
        connection_exempt=exempt,
    )


def build_gateway(
    services: Services, settings: Settings | None = None, tls: ssl.SSLContext | None = None
) -> SmtpGateway:
    settings = settings or services.settings
    connectors = tuple(ipaddress.ip_network(n, strict=False) for n in settings.smtp_connector_networks)
    options = GatewayOptions(
        listen=listener_options(settings, settings.smtp_port, exempt=connectors),
        max_recipients=settings.max_recipients,
        limits=intake_limits(settings),
        connector_tenant=settings.smtp_connector_tenant or None,
        connector_networks=connectors,
        connector_ca=settings.smtp_connector_client_ca is not None,
    )
    throttle = FailureThrottle(
        services.limiter, settings.auth_failure_limit, settings.auth_failure_window_seconds
    )
    gateway_services = GatewayServices(
        services.engine, services.tenancy, services.messages, services.keydir, throttle
    )
    return SmtpGateway(options, gateway_services, tls or build_server_tls(settings))


def build_report_listener(
    services: Services, settings: Settings | None = None, tls: ssl.SSLContext | None = None
) -> ReportListener | None:
    """The inbound listener for bounces and complaints, or None when it is not configured."""
    settings = settings or services.settings
    if settings.smtp_inbound_port is None:
        return None
    options = listener_options(settings, settings.smtp_inbound_port)
    intake = build_report_intake(services, settings)
    return ReportListener(options, intake, tls or build_server_tls(settings))


def worker_options(settings: Settings) -> WorkerOptions:
    return WorkerOptions(
        worker_concurrency=settings.worker_concurrency,
        worker_batch_size=settings.worker_batch_size,
        worker_poll_seconds=settings.worker_poll_seconds,
        lease_seconds=settings.lease_seconds,
        retry_first_seconds=settings.retry_first_seconds,
        retry_cap_seconds=settings.retry_cap_seconds,
        retry_max_age_seconds=settings.retry_max_age_seconds,
        circuit_breaker_failures=settings.circuit_breaker_failures,
        circuit_breaker_seconds=settings.circuit_breaker_seconds,
        destination_rate_per_second=settings.destination_rate_per_second,
        on_tls_unavailable=settings.on_tls_unavailable,
        stream_defaults=tuple((stream, settings.stream_default(stream)) for stream in Stream),
    )


# -- what the HTTP adapters are handed ---------------------------------------------------------
def api_options(settings: Settings) -> ApiOptions:
    return ApiOptions(
        limits=ApiLimits(
            per_minute=settings.api_rate_limit_per_minute,
            max_per_minute=settings.api_rate_limit_max_per_minute,
            auth_failure_limit=settings.auth_failure_limit,
            auth_failure_window_seconds=settings.auth_failure_window_seconds,
        ),
        max_request_bytes=settings.max_request_bytes,
        max_file_bytes=settings.max_file_bytes,
        message_id_domain=settings.smtp_hostname,
        max_recipients=settings.max_recipients,
        intake_limits=intake_limits(settings),
        portal_on_api=settings.portal_on_api,
    )


def portal_options(settings: Settings) -> PortalOptions:
    return PortalOptions(
        secure_cookies=settings.portal_cookie_secure,
        policy=PortalPolicy(
            code_ttl=timedelta(minutes=settings.portal_code_minutes),
            lockout_failures=settings.portal_lockout_failures,
            lockout_duration=timedelta(minutes=settings.portal_lockout_minutes),
            session_idle=timedelta(minutes=settings.portal_session_idle_minutes),
            session_lifetime=timedelta(hours=settings.portal_session_hours),
        ),
        max_reply_bytes=settings.portal_max_reply_bytes,
    )


def destination_vetter(settings: Settings) -> DestinationVetter:
    """The vetter the management API and CLI use: the SSRF-safe client's own loopback allowance."""
    return DestinationVetter(
        allow_loopback=settings.allow_loopback_fetch,
        nameservers=settings.nameservers() or None,
        timeout=min(float(settings.dns_timeout_seconds), 3.0),
    )


def build_webhook_endpoints(services: Services) -> WebhookEndpoints:
    s = services.settings
    return WebhookEndpoints(
        services.engine,
        services.keyring,
        allow_insecure_http=s.allow_loopback_fetch,
        vetter=destination_vetter(s),
    )


def build_webhook_dispatcher(services: Services, config: DispatcherConfig | None = None) -> Dispatcher:
    """The worker's webhook dispatcher (no I/O until it runs)."""
    settings = services.settings
    loopback = settings.allow_loopback_fetch
    cfg = config or DispatcherConfig()
    resolver = services.dns_resolver()
    ca_file = str(settings.tls_ca_file) if settings.tls_ca_file else None

    def client(allow_http: bool) -> SafeHttpClient:
        return SafeHttpClient(
            resolver,
            allow_loopback=loopback,
            allow_http=allow_http,
            timeout=cfg.timeout,
            max_bytes=cfg.max_response_bytes,
            ca_file=ca_file,
        )

    endpoints = WebhookEndpoints(services.engine, services.keyring, allow_insecure_http=loopback)
    notifier = DisabledNotifier(services.messages, services.tenancy, settings.smtp_hostname)
    return Dispatcher(services.engine, endpoints, client(False), client(True), notifier=notifier, config=cfg)


def intake_limits(settings: Settings) -> IntakeLimits:
    """The ``intake_*`` settings as the limits both intakes enforce."""
    return IntakeLimits(
        max_header_bytes=settings.intake_max_header_bytes,
        max_header_field_bytes=settings.intake_max_header_field_bytes,
        max_header_fields=settings.intake_max_header_fields,
        max_received=settings.intake_max_received,
        max_mime_depth=settings.intake_max_mime_depth,
        max_mime_parts=settings.intake_max_mime_parts,
    )


def build_tlsrpt_scheduler(services: Services, owner: str) -> TlsReportScheduler:
    """The worker role's daily TLS-report run (``tlsrpt_auto_send``), claimed per UTC day."""
    return TlsReportScheduler(DailyRuns(services.engine), build_tlsrpt_sender(services), owner)


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
