"""One settings object: ``SEALMAIL_*`` environment variables and an optional TOML file.

Environment variables win over the TOML file (``SEALMAIL_CONFIG`` names it, default
``./sealmail.toml`` when present), which wins over the defaults below.  Unknown keys are
refused so a typo cannot silently fall back to a default.  The README's settings table is
generated from the ``description`` of each field (``sealmail config docs``).

Size: one ``Settings`` class, one documented field per setting; splitting it would scatter
the catalogue the README table is generated from.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sealmail.domain.numerals import within
from sealmail.domain.tls_policy import STREAM_MINIMUM, Stream, TlsPolicy

Role = Literal["api", "smtp", "worker"]
OutboundMode = Literal["capture", "mx", "smarthost"]
MAX_WORKER_PROCESSES = 64  # children of one `sealmail serve`; beyond that, run `serve --role worker`


class Settings(BaseSettings):
    """Every knob Sealmail has, with its default and what it is for."""

    model_config = SettingsConfigDict(
        env_prefix="SEALMAIL_",
        extra="forbid",
        validate_default=True,
        env_nested_delimiter="__",
    )

    # -- storage ---------------------------------------------------------------------------
    home: Path = Field(
        Path("var"),
        description="Directory for the SQLite database, key file, certificates and captured mail.",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL. Empty means SQLite at `<home>/sealmail.db`; "
        "use `postgresql://user@host/db` at scale.",
    )
    master_key_file: Path | None = Field(
        None, description="Master key file (0600). Empty means `<home>/master.key`."
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="Database connections each process keeps open. PostgreSQL's `max_connections` "
        "(100 by default) must cover every process's pool plus overflow: with many worker processes "
        "lower this (3 is enough for a worker) or put PgBouncer in front.",
    )
    database_max_overflow: int = Field(
        20,
        ge=0,
        le=500,
        description="Extra connections a process may open for a burst beyond `database_pool_size`, "
        "closed again when returned.",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite `synchronous` pragma. FULL survives power loss: an acknowledged "
        "message is on disk. NORMAL survives process crashes only.",
    )

    # -- API -------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Address the REST API listens on.")
    api_port: int = Field(8025, ge=0, le=65535, description="Port of the REST API.")
    public_url: str = Field("", description="Base URL clients use to reach the API (printed by `make run`).")
    max_request_bytes: int = Field(
        35 * 1024 * 1024,
        ge=1024,
        description="Largest API request body accepted (base64 attachments included).",
    )
    max_recipients: int = Field(
        1000, ge=1, le=10000, description="Most recipients (to+cc+bcc) one message may have."
    )
    idempotency_ttl_seconds: int = Field(
        86400, ge=60, description="How long an `Idempotency-Key` is remembered."
    )

    argon2_time_cost: int = Field(
        3, ge=1, description="argon2id passes for API-key and SMTP-password hashes."
    )
    argon2_memory_kib: int = Field(
        65536, ge=8, description="argon2id memory (KiB) for API-key and SMTP-password hashes."
    )

    # -- rate limits (issue 11.5) ----------------------------------------------------------------
    rate_limit_store: Literal["auto", "memory", "database"] = Field(
        "auto",
        description="Where rate-limit counters live: `database` shares them across processes "
        "(a table; one upsert per request, or per block of hits reserved ahead when the limit is large); "
        "`memory` is per process; `auto` is `database` on "
        "PostgreSQL and `memory` on SQLite (one process).",
    )
    api_rate_limit_per_minute: int = Field(
        600, ge=1, description="Requests a minute per API key, unless the tenant sets `rate_limit`."
    )
    api_rate_limit_max_per_minute: int = Field(
        6000, ge=1, description="The highest per-key limit a tenant may set for itself."
    )
    auth_failure_limit: int = Field(
        10,
        ge=1,
        description="Failed API-key authentications allowed per key id and per client address "
        "in `auth_failure_window_seconds`; then 429 before any argon2 work.",
    )
    auth_failure_window_seconds: int = Field(300, ge=1, description="The window of `auth_failure_limit`.")
    public_rate_limit_per_minute: int = Field(
        120, ge=1, description="Requests a minute per client address on `/t`, `/u` and `/p`."
    )
    console_signin_rate_limit_per_minute: int = Field(
        30,
        ge=1,
        description="Requests a minute per client address to each console sign-in step (password, "
        "second factor, passkey, SSO start and callback, one-time link, enrolment); then 429.",
    )
    console_rate_limit_per_minute: int = Field(
        300,
        ge=1,
        description="Requests a minute per console session to the signed-in pages (a busy person "
        "clicks a few dozen), and four times that per client address (an office behind one "
        "address); then a 429 page with `Retry-After`.",
    )
    sms_callback_rate_limit_per_minute: int = Field(
        3000,
        ge=1,
        description="Requests a minute per client address to the SMS provider's callbacks "
        "(`/sms/twilio/status`, `/sms/twilio/inbound`), counted before the signature is checked; "
        "then 429. Generous: the provider sends every receipt from a few addresses.",
    )

    # -- SMTP gateway ------------------------------------------------------------------------
    smtp_host: str = Field("127.0.0.1", description="Address the SMTP gateway listens on.")
    smtp_port: int = Field(2587, ge=0, le=65535, description="SMTP submission port (587 in production).")
    smtp_hostname: str = Field(
        "sealmail.localhost",
        description="Name used in the gateway banner and as EHLO name for outbound mail.",
    )
    smtp_tls_cert: Path | None = Field(
        None, description="PEM certificate for STARTTLS. Empty means `<home>/tls/server.crt`."
    )
    smtp_tls_key: Path | None = Field(
        None, description="PEM key for STARTTLS. Empty means `<home>/tls/server.key`."
    )
    smtp_max_message_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Largest message the gateway accepts (SIZE)."
    )
    smtp_max_connections: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Connections each SMTP listener holds at once, per process; the next is "
        "answered 421 and closed.",
    )
    smtp_max_connections_per_client: int = Field(
        50,
        ge=1,
        le=100_000,
        description="Connections one client address may hold at once on each SMTP listener "
        "(Postfix's `smtpd_client_connection_count_limit`); `smtp_connector_networks` are exempt.",
    )
    smtp_connector_networks: list[str] = Field(
        default_factory=list,
        description="CIDR ranges allowed to relay without AUTH (Microsoft 365 / Google "
        "Workspace outbound connectors), each mapped to `smtp_connector_tenant`.",
    )
    smtp_connector_client_ca: Path | None = Field(
        None,
        description="CA file; a TLS client certificate chaining to it authorizes relay "
        "for `smtp_connector_tenant`.",
    )
    smtp_connector_tenant: str = Field(
        "", description="Tenant id that connector-relayed mail is accepted for."
    )

    # -- outbound --------------------------------------------------------------------------
    outbound_mode: OutboundMode = Field(
        "capture",
        description="`capture`: every message goes to the built-in loopback capture sink; "
        "`mx`: real MX delivery; `smarthost`: relay through `smarthost_*`.",
    )
    capture_host: str = Field("127.0.0.1", description="Capture sink address.")
    capture_port: int = Field(2525, ge=0, le=65535, description="Capture sink port.")
    mx_port: int = Field(25, ge=1, le=65535, description="Port used when connecting to MX hosts.")
    dns_nameservers: list[str] = Field(
        default_factory=list,
        description="Resolvers as `ip` or `ip:port`; empty uses the system resolver. "
        "DANE needs a DNSSEC-validating resolver.",
    )
    dns_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="DNS query timeout; an unanswered query is sent once more, so a lookup "
        "gives up after about twice this.",
    )
    tls_ca_file: Path | None = Field(
        None,
        description="Extra CA bundle trusted for outbound certificate verification "
        "(the system store is always used too).",
    )
    mta_sts_enabled: bool = Field(True, description="Fetch and honour MTA-STS policies.")
    dane_enabled: bool = Field(True, description="Look up TLSA records and honour DANE.")
    allow_loopback_fetch: bool = Field(
        False,
        description="Let outbound HTTPS fetches (MTA-STS, later WKD, webhooks) reach "
        "loopback. Tests only; never in production.",
    )
    smarthost_host: str = Field("", description="Smart host name for `outbound_mode=smarthost`.")
    smarthost_port: int = Field(587, ge=1, le=65535, description="Smart host port.")
    smarthost_username: str = Field("", description="Smart host AUTH user.")
    smarthost_password: str = Field("", description="Smart host AUTH password.")
    smarthost_tls: TlsPolicy = Field(
        TlsPolicy.REQUIRE_VERIFIED, description="TLS level demanded of the smart host."
    )
    sms_provider: Literal["capture", "none", "twilio", "smpp"] = Field(
        "capture",
        description="Where texts go: `capture` keeps them for `sealmail captured --sms` (development, "
        "like `outbound_mode=capture`); `twilio` a Twilio-style REST API; `smpp` an SMPP 3.4 SMSC; "
        "`none` no texts.",
    )
    twilio_account_sid: str = Field("", description="Account SID for `sms_provider=twilio`.")
    twilio_auth_token: str = Field(
        "", description="Auth token: basic auth, and the key of callback signatures."
    )
    twilio_base_url: str = Field("https://api.twilio.com", description="The REST API's base URL.")
    smpp_host: str = Field("", description="SMSC host for `sms_provider=smpp`.")
    smpp_port: int = Field(2775, ge=1, le=65535, description="SMSC port.")
    smpp_system_id: str = Field("", description="SMPP system_id (bind_transceiver).")
    smpp_password: str = Field("", description="SMPP password (at most 8 characters, SMPP 3.4 §4.1).")
    tls_policy_transactional: TlsPolicy = Field(
        TlsPolicy.REQUIRE, description="Default TLS policy of the transactional stream."
    )
    tls_policy_phi: TlsPolicy = Field(
        TlsPolicy.REQUIRE_VERIFIED,
        description="Default TLS policy of the phi stream (never below `require`).",
    )
    tls_policy_broadcast: TlsPolicy = Field(
        TlsPolicy.OPPORTUNISTIC, description="Default TLS policy of the broadcast stream."
    )
    on_tls_unavailable: Literal["defer", "fail"] = Field(
        "defer",
        description="What happens to a recipient whose destination cannot meet the TLS "
        "policy: keep retrying (`defer`) or fail at once with reason `tls_required`.",
    )

    # -- SecureLine ---------------------------------------------------------------------------
    portal_base_url: str = Field(
        "",
        description="Base URL of the secure portal used in notice links; empty means "
        "`public_url` or the API address.",
    )
    portal_expiry_days: int = Field(30, ge=1, le=3650, description="Default portal message lifetime.")
    portal_on_api: bool = Field(
        True,
        description="Serve the portal under `/p` of the API server; turn off when the portal "
        "runs on its own origin (`sealmail serve --role portal`).",
    )
    portal_host: str = Field("127.0.0.1", description="Address of the portal role's own server.")
    portal_port: int = Field(8026, ge=0, le=65535, description="Port of the portal role's own server.")
    portal_cookie_secure_mode: Literal["auto", "on", "off"] = Field(
        "auto",
        description="`Secure` portal cookies: `auto` sets them when the portal URL is https "
        "(an https portal URL always gets them, with the `__Host-` prefix).",
    )
    portal_session_idle_minutes: int = Field(15, ge=1, description="Portal idle sign-out.")
    portal_session_hours: int = Field(8, ge=1, description="Absolute portal session lifetime.")
    portal_code_minutes: int = Field(10, ge=1, le=60, description="Lifetime of an emailed sign-in code.")
    portal_lockout_failures: int = Field(5, ge=1, description="Failed sign-ins before a lockout.")
    portal_lockout_minutes: int = Field(30, ge=1, description="How long a portal lockout lasts.")
    portal_max_reply_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Largest secure reply (with attachments) accepted."
    )
    smime_trust_file: Path | None = Field(
        None,
        description="PEM bundle of CAs trusted for recipients' S/MIME certificates (in addition "
        "to the system store and each tenant's explicitly trusted certificates).",
    )
    key_discovery: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Look up recipients' OpenPGP keys by WKD: `auto` is on except with "
        "`outbound_mode=capture`.",
    )
    keyserver_url: str = Field(
        "", description="Optional VKS keyserver (e.g. https://keys.openpgp.org) asked after WKD."
    )
    dkim_sign: bool = Field(True, description="DKIM-sign every outbound message (after encryption).")

    # -- large files ---------------------------------------------------------------------------
    max_file_bytes: int = Field(
        2 * 1024**3, ge=1024, description="Largest file a secure file share accepts (streamed upload)."
    )
    file_chunk_bytes: int = Field(
        1024**2, ge=4096, le=64 * 1024**2, description="Chunk size of encrypted file storage."
    )
    blob_dir: Path | None = Field(
        None, description="Directory for encrypted file chunks; empty means `<home>/blobs`."
    )

    # -- queue and workers ------------------------------------------------------------------
    worker_batch_size: int = Field(200, ge=1, le=5000, description="Recipients claimed per poll.")
    worker_poll_seconds: float = Field(
        0.2,
        gt=0,
        description="How long an idle worker waits before polling again; doubled after each "
        "empty poll, up to 8 times this.",
    )
    worker_concurrency: int = Field(
        50, ge=1, description="SMTP transactions one worker process runs at once."
    )
    worker_processes: int | Literal["auto"] = Field(
        "auto",
        description="When `sealmail serve` runs several roles, worker processes it starts as children "
        "(`serve --role worker`, restarted if one dies) so delivery uses a core of its own: `auto` is 1 on "
        "a machine with 2 or more cores, else 0; 0 runs the worker inside the serving process. "
        "`serve --role worker` alone is always one process.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="The event loop every role runs on: `uvloop` (libuv, with TLS in compiled code; "
        "the standard loop where uvloop is not installed) or `asyncio` (the standard library's loop, "
        "TLS in pure Python).",
    )
    lease_seconds: int = Field(300, ge=5, description="A claimed recipient is reclaimable after this long.")
    retry_first_seconds: int = Field(300, ge=1, description="First retry delay.")
    retry_cap_seconds: int = Field(3600, ge=1, description="Longest retry delay.")
    retry_max_age_seconds: int = Field(
        259200, ge=60, description="Give up (expire) this long after acceptance."
    )
    destination_max_connections: int = Field(
        10, ge=1, description="Concurrent connections one worker opens to one destination."
    )
    destination_rate_per_second: float = Field(
        0.0, ge=0, description="Messages per second to one destination per worker; 0 = unlimited."
    )
    circuit_breaker_failures: int = Field(
        10,
        ge=1,
        description="Consecutive connection-level failures that suspend a destination.",
    )
    circuit_breaker_seconds: int = Field(
        300, ge=1, description="How long a tripped destination stays suspended."
    )
    tlsrpt_auto_send: bool = Field(
        True,
        description="Worker processes send yesterday's TLS reports (RFC 8460) once per UTC day; "
        "one process claims the day in the database.",
    )
    dsn_enabled: bool = Field(
        False, description="Send an RFC 3464 bounce (headers only) to the envelope sender."
    )
    verp_enabled: bool = Field(
        True,
        description="Send each recipient's copy with its own signed return path "
        "(`b+<recipient id>.<tag>@<return-path domain>`) so asynchronous bounces and complaints "
        "find their recipient. Takes effect once bounces can arrive: `smtp_inbound_port` or "
        "`return_path_domain` set (point the return-path domain's MX at the inbound listener).",
    )
    return_path_domain: str = Field(
        "",
        description="Domain of every signed return path; empty: `<return_path_label>.<sender domain>` "
        "(SPF-aligned with the sender through a subdomain the customer delegates).",
    )
    return_path_label: str = Field(
        "bounces", description="Subdomain label of the per-sender return-path domain."
    )
    fbl_local_part: str = Field(
        "fbl",
        description="Local part, at a return-path domain, that takes ARF feedback-loop reports "
        "(register `fbl@<return-path domain>` with mailbox providers).",
    )
    smtp_inbound_port: int | None = Field(
        2526,
        ge=0,
        le=65535,
        description="Port of the inbound listener for bounces (RFC 3464) and complaints (RFC 5965), "
        "on `smtp_host` (25 in production, behind the return-path domain's MX); empty or `off`: no listener "
        "(and no signed return paths unless `return_path_domain` names where bounces go).",
    )

    # -- intake limits (both the SMTP gateway and POST /v1/messages/raw) ----------------------
    intake_max_header_bytes: int = Field(
        256 * 1024,
        ge=8 * 1024,
        le=16 * 1024 * 1024,
        description="Largest header section a submitted message may have (octets); "
        "bigger: refused 552 5.3.4 / 422.",
    )
    intake_max_header_field_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest single header field, folding included (octets); "
        "bigger: refused 552 5.3.4 / 422.",
    )
    intake_max_header_fields: int = Field(
        500, ge=50, le=100_000, description="Most header fields a submitted message may have."
    )
    intake_max_received: int = Field(
        100,
        ge=10,
        le=1000,
        description="Most `Received` fields before a message counts as looping (RFC 5321 §6.3); "
        "more: refused 554 5.4.6 / 422.",
    )
    intake_max_mime_depth: int = Field(
        32, ge=2, le=100, description="Deepest MIME nesting (multipart and message/*) intake accepts."
    )
    intake_max_mime_parts: int = Field(
        1000, ge=10, le=100_000, description="Most MIME parts one submitted message may have."
    )

    # -- logging -----------------------------------------------------------------------------
    evidence_tsa_url: str | None = Field(
        None,
        description="RFC 3161 time-stamp authority (HTTP URL) that stamps proofs of delivery and audit "
        "anchors; unset: no time-stamps.",
    )
    evidence_anchor_minutes: int = Field(
        60,
        ge=0,
        le=7 * 24 * 60,
        description="Workers anchor the audit chain once per this many minutes (one anchor per period "
        "however many workers run); 0: only `sealmail audit anchor`.",
    )
    retention_purge_minutes: int = Field(
        60,
        ge=0,
        le=7 * 24 * 60,
        description="Workers run the retention purge (crypto-shredding past each tenant's periods) this "
        "often; 0: only `sealmail evidence retention purge`.",
    )
    restore_drill_minutes: int = Field(
        0,
        ge=0,
        le=31 * 24 * 60,
        description="Workers run the restore drill (back up, restore into a scratch database, verify, "
        "time it) once per this many minutes, e.g. 10080 for weekly; a failure is mailed to the anchor "
        "recipients. 0: only `sealmail backup drill` (a drill copies the whole database).",
    )
    restore_drill_scratch_url: str | None = Field(
        None,
        description="An EMPTY database the scheduled drill restores into (emptied after each drill); "
        "unset: a temporary SQLite file.",
    )
    osv_url: str = Field(
        "https://api.osv.dev",
        description="The OSV advisory API (or a mirror speaking it) that `sealmail evidence deps --refresh` "
        "asks about every pin of the lock file; the only host that fetch may reach.",
    )
    osv_refresh_minutes: int = Field(
        1440,
        ge=0,
        le=31 * 24 * 60,
        description="Workers refresh the OSV advisories every pack reports once per this many minutes "
        "(one refresh per period per host; a failure keeps the previous answer, logged, and the packs say "
        "its time). 0: only `sealmail evidence deps --refresh`.",
    )
    osv_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=600,
        description="Deadline for each OSV request of a refresh (connect, TLS and the whole body).",
    )
    evidence_lock_file: Path | None = Field(
        None,
        description="The lock file whose pins every evidence pack (CLI, API, console) compares and audits; "
        "unset: `requirements.lock` in the working directory, when there is one.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    log_format: Literal["console", "json"] = Field("console", description="Log renderer.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("SEALMAIL_CONFIG", "sealmail.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @field_validator("smtp_inbound_port", mode="before")
    @classmethod
    def _no_listener(cls, value: object) -> object:
        # An environment variable cannot be "unset" to None: empty or "off" turns it off.
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    @field_validator("worker_processes", mode="before")
    @classmethod
    def _process_count(cls, value: object) -> object:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if isinstance(value, bool) or not within(text, MAX_WORKER_PROCESSES):
            raise ValueError(f"`auto` or a number of processes from 0 to {MAX_WORKER_PROCESSES}")
        return int(text)

    @field_validator("smtp_connector_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("dns_nameservers")
    @classmethod
    def _nameservers_parse(cls, value: list[str]) -> list[str]:
        for item in value:
            host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
            ipaddress.ip_address(host or item)
            if port and not within(port, 65535):
                raise ValueError(f"bad port in {item!r}")
        return value

    @field_validator("osv_url")
    @classmethod
    def _osv_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.query or "@" in parts.netloc:
            raise ValueError("osv_url: an https URL with a host, e.g. https://api.osv.dev")
        return value

    @field_validator("tls_policy_phi")
    @classmethod
    def _phi_floor(cls, value: TlsPolicy) -> TlsPolicy:
        if value.rank < STREAM_MINIMUM[Stream.PHI].rank:
            raise ValueError("the phi stream cannot be opportunistic; use require or stronger")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.retry_cap_seconds < self.retry_first_seconds:
            raise ValueError("retry_cap_seconds must be >= retry_first_seconds")
        if self.outbound_mode == "smarthost" and not self.smarthost_host:
            raise ValueError("outbound_mode=smarthost needs smarthost_host")
        return self

    # -- derived paths -------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'sealmail.db').resolve()}"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.home / "master.key"

    @property
    def resolved_tls_cert(self) -> Path:
        return self.smtp_tls_cert or self.home / "tls" / "server.crt"

    @property
    def resolved_tls_key(self) -> Path:
        return self.smtp_tls_key or self.home / "tls" / "server.key"

    @property
    def resolved_portal_url(self) -> str:
        return (self.portal_base_url or self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip(
            "/"
        )

    @property
    def portal_cookie_secure(self) -> bool:
        # A portal served over https never sends its session cookie in the clear, nor
        # without the __Host- prefix (RFC 6265bis §4.1.3.2); "off" only matters on http.
        if self.resolved_portal_url.startswith("https://"):
            return True
        return self.portal_cookie_secure_mode == "on"

    @property
    def discovery_enabled(self) -> bool:
        return self.key_discovery == "on" or (
            self.key_discovery == "auto" and self.outbound_mode != "capture"
        )

    @property
    def dev_ca_file(self) -> Path:
        return self.home / "tls" / "ca.crt"

    def stream_default(self, stream: Stream) -> TlsPolicy:
        return {
            Stream.TRANSACTIONAL: self.tls_policy_transactional,
            Stream.PHI: self.tls_policy_phi,
            Stream.BROADCAST: self.tls_policy_broadcast,
        }[stream]

    def nameservers(self) -> list[tuple[str, int]]:
        result: list[tuple[str, int]] = []
        for item in self.dns_nameservers:
            if item.count(":") == 1:
                host, port = item.split(":")
                result.append((host, int(port)))
            else:
                result.append((item, 53))
        return result


class ConfigError(Exception):
    """Configuration cannot be loaded; the message names the setting."""


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning validation errors into one message naming each setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            env = "SEALMAIL_" + name.upper() if name != "settings" else "settings"
            lines.append(f"{env}: {err['msg']}")
        raise ConfigError(
            "invalid configuration — fix these settings and start again:\n  " + "\n  ".join(lines)
        ) from exc
