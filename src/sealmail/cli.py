"""The ``sealmail`` command line (Typer + Rich)."""

from __future__ import annotations

import asyncio
import errno
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from sealmail.app import (
    Services,
    build_evidence,
    build_portal_lifecycle,
    build_services,
    build_tlsrpt_sender,
    build_users,
    build_webhook_endpoints,
    console_url,
)
from sealmail.client.cli import remote_app
from sealmail.config import ConfigError, Settings, load_settings
from sealmail.crypto.vault import KeyError_
from sealmail.errors import SealmailError
from sealmail.evidence import cli as evidence_cli
from sealmail.portal import cli as portal_cli
from sealmail.portal.cli import portal_app
from sealmail.portal.lifecycle import PortalLifecycle
from sealmail.suppressions import cli as suppressions_cli
from sealmail.suppressions.cli import suppressions_app
from sealmail.suppressions.service import Suppressions
from sealmail.tlsrpt import cli as tlsrpt_cli
from sealmail.tlsrpt.cli import tlsrpt_app
from sealmail.users import cli as users_cli
from sealmail.users.cli import UsersCli, users_app
from sealmail.webhooks import cli as webhooks_cli
from sealmail.webhooks.cli import webhooks_app
from sealmail.webhooks.endpoints import WebhookEndpoints

if TYPE_CHECKING:
    from sealmail.crypto import dkim
    from sealmail.net.dns import Resolver

# Locals are never shown in tracebacks: they may hold keys or message content.
app = typer.Typer(
    no_args_is_help=True, help="Sealmail: secure email for healthcare.", pretty_exceptions_show_locals=False
)
tenants_app = typer.Typer(no_args_is_help=True, help="Organizations.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (shown once, stored hashed).")
smtp_app = typer.Typer(no_args_is_help=True, help="SMTP submission credentials.")
domains_app = typer.Typer(no_args_is_help=True, help="Verified sender domains.")
crypto_app = typer.Typer(no_args_is_help=True, help="Master and tenant keys.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
config_app = typer.Typer(no_args_is_help=True, help="Settings.")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="api-keys")
app.add_typer(smtp_app, name="smtp-credentials")
app.add_typer(domains_app, name="domains")
app.add_typer(crypto_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(suppressions_app, name="suppressions")
app.add_typer(tlsrpt_app, name="tlsrpt")
app.add_typer(portal_app, name="portal")
app.add_typer(remote_app, name="remote")
app.add_typer(users_app, name="users")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn expected errors into a message and exit code 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, KeyError_) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        except SealmailError as exc:
            err.print(f"[red]error:[/red] {exc.detail}")
            raise typer.Exit(2) from exc
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # A listener's port is taken (often another Sealmail still running).
            err.print(
                f"[red]error:[/red] {exc.strerror or exc}. Stop whatever holds the port, or move "
                "Sealmail with SEALMAIL_API_PORT / SEALMAIL_SMTP_PORT / SEALMAIL_SMTP_INBOUND_PORT / "
                "SEALMAIL_CAPTURE_PORT / SEALMAIL_PORTAL_PORT."
            )
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]  # same signature as fn


def _settings() -> Settings:
    return load_settings()


def _services(settings: Settings | None = None) -> Services:
    settings = settings or _settings()
    if not settings.resolved_master_key_file.exists():
        raise ConfigError(f"no master key at {settings.resolved_master_key_file}; run `sealmail init` first")
    return build_services(settings)


def _tenant(svc: Services, tenant: str | None) -> str:
    if tenant:
        return svc.tenancy.get_tenant(tenant)["id"]  # type: ignore[no-any-return]  # str column
    rows = svc.tenancy.list_tenants()
    if len(rows) != 1:
        raise ConfigError(f"{len(rows)} tenants exist; pass --tenant <id> (see `sealmail tenants list`)")
    return rows[0]["id"]  # type: ignore[no-any-return]  # str column


T = TypeVar("T")


def feature_session(
    make: Callable[[Services], T],
) -> Callable[[str | None], AbstractContextManager[tuple[T, str]]]:
    """How a feature's commands get their service: built here from settings, for the tenant
    named (or the only one; ``*`` for installation-wide work), closed afterwards, and every
    expected error turned into a message and exit code 2."""

    @contextmanager
    def session(tenant: str | None) -> Iterator[tuple[T, str]]:
        try:
            svc = _services()
        except ConfigError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        try:
            tenant_id = tenant if tenant == "*" else _tenant(svc, tenant)
            yield make(svc), tenant_id
        except (ConfigError, KeyError_) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        except SealmailError as exc:
            err.print(f"[red]error:[/red] {exc.detail}")
            raise typer.Exit(2) from exc
        finally:
            svc.close()

    return session


def _webhook_endpoints(svc: Services) -> WebhookEndpoints:
    return build_webhook_endpoints(svc)


def _suppressions(svc: Services) -> Suppressions:
    return Suppressions(svc.engine)


def _portal_lifecycle(svc: Services) -> PortalLifecycle:
    return build_portal_lifecycle(svc)


webhooks_cli.session.bind(feature_session(_webhook_endpoints))
suppressions_cli.session.bind(feature_session(_suppressions))
portal_cli.session.bind(feature_session(_portal_lifecycle))
evidence_cli.session.bind(feature_session(build_evidence))
app.add_typer(evidence_cli.evidence_app, name="evidence")
app.command("verify")(evidence_cli.verify_cmd)
audit_app.command("anchor")(evidence_cli.anchor_cmd)
users_cli.session.bind(feature_session(lambda svc: UsersCli(build_users(svc), console_url(svc.settings))))
tlsrpt_cli.session.bind(feature_session(lambda svc: svc.tlsrpt))
tlsrpt_cli.sender_session.bind(feature_session(build_tlsrpt_sender))


@app.command()
@friendly
def init(
    tenant: Annotated[str, typer.Option(help="Name of the first tenant.")] = "Demo Clinic",
    quiet: Annotated[bool, typer.Option(help="Print only errors.")] = False,
) -> None:
    """Create ./var (database, master key 0600, dev certificate) and the first tenant."""
    from sealmail.bootstrap import DEV_DOMAIN, initialize

    settings = _settings()
    result = initialize(settings, first_tenant=tenant)
    if quiet:
        return
    out.print(f"database: {settings.resolved_database_url}")
    out.print(
        f"master key: {settings.resolved_master_key_file}" + (" (created)" if result.created_key else "")
    )
    if result.tenant_id:
        out.print(f"tenant {result.tenant_id} ({tenant}) with verified sender domain {DEV_DOMAIN}")
        out.print(f"API key (shown once): [bold]{result.api_key}[/bold]")


@app.command()
@friendly
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from sealmail.store import db
    from sealmail.store import migrate as mig

    settings = _settings()
    engine = db.create_engine(settings.resolved_database_url)
    mig.upgrade(engine)
    out.print(f"schema at revision {mig.current_revision(engine)}")


@app.command()
@friendly
def serve(
    role: Annotated[list[str] | None, typer.Option(help="api, smtp or worker; repeat; default all.")] = None,
    dev_banner: Annotated[bool, typer.Option(help="Print a fresh dev API key and a curl example.")] = False,
) -> None:
    """Run Sealmail: every role in one process, or the roles given."""
    from sealmail.runtime import ROLES, configure_logging
    from sealmail.runtime import serve as run_roles

    settings = _settings()
    # The portal runs inside the API server unless it has an origin of its own.
    default_roles = [r for r in ROLES if r != "portal" or not settings.portal_on_api]
    roles = role or default_roles
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ConfigError(f"unknown role {unknown[0]!r}; choose from {', '.join(ROLES)}")
    configure_logging(settings)
    svc = _services(settings)
    if dev_banner:
        # Printed once the API answers, so the curl it shows works when pasted.
        banner = _banner(svc)
        # soft_wrap: never break the key or the curl line, whatever the terminal width.
        asyncio.run(run_roles(svc, roles, on_ready=lambda: out.print(banner, soft_wrap=True)))
        return
    asyncio.run(run_roles(svc, roles))


def _banner(svc: Services) -> str:
    from sealmail.bootstrap import DEV_DOMAIN

    settings = svc.settings
    tenant_id = _tenant(svc, None)
    for key in svc.tenancy.list_api_keys(tenant_id):
        if key["name"] == "make-run" and key["revoked_at"] is None:
            svc.tenancy.revoke_api_key(tenant_id, key["id"], actor="make-run")
    _, api_key = svc.tenancy.create_api_key(tenant_id, "make-run", ["send", "read", "admin"], "make-run")
    base = settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
    example = (
        f'{{"from": "Clinic <noreply@{DEV_DOMAIN}>", "to": ["patient@example.net"], '
        '"subject": "Your results are ready", "text": "Hello from Sealmail", "stream": "phi"}'
    )
    port = settings.smtp_inbound_port
    inbound = f"{settings.smtp_host}:{port}" if port is not None else "off"
    console, owner = _console_lines(svc, tenant_id)
    return f"""
[bold green]Sealmail is running[/bold green]
  API            {base}
  OpenAPI docs   {base}/docs
  SMTP gateway   {settings.smtp_host}:{settings.smtp_port} (STARTTLS, AUTH after TLS)
  Bounce intake  {inbound} (DSN and ARF reports to signed return paths)
  Secure portal  {settings.resolved_portal_url}/p/
  Console        {console}
  Owner sign-in  {owner}
  Outbound       {settings.outbound_mode} (capture sink {settings.capture_host}:{settings.capture_port})
  API key        [bold]{api_key}[/bold]   (new for this run; earlier make-run keys revoked)

Send a first message:
  curl -sS {base}/v1/messages -H 'Authorization: Bearer {api_key}' \\
    -H 'Content-Type: application/json' \\
    -d '{example}'

Then see what the recipient received:  .venv/bin/sealmail captured
"""


def _console_lines(svc: Services, tenant_id: str) -> tuple[str, str]:
    """The console URL and the dev owner's one-time link (until they have enrolled)."""
    from sealmail.bootstrap import DEV_DOMAIN

    email = f"owner@{DEV_DOMAIN}"
    url = console_url(svc.settings)
    token = build_users(svc).owner_link(tenant_id, email, actor="make-run")
    if token is None:
        return url, f"{email} signs in with password and authenticator code"
    return url, f"[bold]{url}/welcome/{token}[/bold]   (one-time; sets up {email})"


@app.command()
@friendly
def send(
    to: Annotated[list[str], typer.Option(help="Recipient; repeat for more.")],
    sender: Annotated[str, typer.Option("--from", help="From address (verified domain).")],
    subject: Annotated[str, typer.Option()] = "Sealmail test message",
    text: Annotated[str, typer.Option()] = "This is a test message from Sealmail.",
    stream: Annotated[str, typer.Option()] = "transactional",
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Queue a test message (delivered by a running worker)."""
    from sealmail.messages import compose
    from sealmail.messages.schemas import MessageIn
    from sealmail.tenancy.service import Principal

    svc = _services()
    tenant_id = _tenant(svc, tenant)
    body = MessageIn.model_validate(
        {"from": sender, "to": to, "subject": subject, "text": text, "stream": stream}
    )
    sub = compose.from_message(body, svc.settings.smtp_hostname, svc.settings.max_recipients)
    result, _ = svc.messages.submit(Principal(tenant_id, "cli", frozenset({"send"})), sub)
    out.print(f"queued {result.id} for {len(result.recipients)} recipient(s)")


@app.command()
@friendly
def captured(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 10,
    full: Annotated[bool, typer.Option(help="Print the whole message.")] = False,
) -> None:
    """List what the built-in capture sink received."""
    from sealmail.delivery.capture_sink import list_all

    svc = _services()
    rows = list_all(svc.engine, limit)
    if not rows:
        out.print("nothing captured yet — is `make run` (or `sealmail serve`) running?")
        return
    for row in rows:
        out.print(
            f"[bold]{row['received_at']}[/bold] {row['message_id']} → {', '.join(row['rcpt_to'])}"
            f" ({row['size']} bytes, {row['tls_version'] or 'plaintext'})"
        )
        if full:
            out.print(row["data"], markup=False, highlight=False, emoji=False)


# -- tenants, keys, credentials, domains ---------------------------------------------------
@tenants_app.command("create")
@friendly
def tenants_create(name: str) -> None:
    svc = _services()
    out.print(svc.tenancy.create_tenant(name, actor="cli"))


@tenants_app.command("list")
@friendly
def tenants_list() -> None:
    svc = _services()
    table = Table("id", "name", "created")
    for row in svc.tenancy.list_tenants():
        table.add_row(row["id"], row["name"], row["created_at"].isoformat())
    out.print(table)


@keys_app.command("create")
@friendly
def api_keys_create(
    name: Annotated[str, typer.Option()] = "cli",
    scope: Annotated[list[str] | None, typer.Option(help="send, read, admin; repeat.")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    svc = _services()
    key_id, secret = svc.tenancy.create_api_key(_tenant(svc, tenant), name, scope or ["send"], "cli")
    out.print(f"{key_id}\n[bold]{secret}[/bold]  (shown once)")


@keys_app.command("list")
@friendly
def api_keys_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    svc = _services()
    table = Table("id", "name", "scopes", "created", "revoked")
    for row in svc.tenancy.list_api_keys(_tenant(svc, tenant)):
        table.add_row(
            row["id"],
            row["name"],
            ",".join(row["scopes"]),
            row["created_at"].isoformat(),
            row["revoked_at"].isoformat() if row["revoked_at"] else "",
        )
    out.print(table)


@keys_app.command("revoke")
@friendly
def api_keys_revoke(key_id: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    svc = _services()
    svc.tenancy.revoke_api_key(_tenant(svc, tenant), key_id, "cli")
    out.print(f"revoked {key_id}")


@smtp_app.command("create")
@friendly
def smtp_create(
    stream: Annotated[str, typer.Option()] = "transactional",
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    from sealmail.domain.tls_policy import Stream

    svc = _services()
    cred_id, user, password = svc.tenancy.create_smtp_credential(_tenant(svc, tenant), "cli", Stream(stream))
    out.print(f"{cred_id}\nusername: {user}\npassword: [bold]{password}[/bold]  (shown once)")


@smtp_app.command("revoke")
@friendly
def smtp_revoke(cred_id: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    svc = _services()
    svc.tenancy.revoke_smtp_credential(_tenant(svc, tenant), cred_id, "cli")
    out.print(f"revoked {cred_id}")


@domains_app.command("add")
@friendly
def domains_add(
    name: str,
    tenant: Annotated[str | None, typer.Option()] = None,
    verified: Annotated[bool, typer.Option(help="Mark verified without a DNS check.")] = False,
) -> None:
    """Register a sender domain, generate its DKIM keys and print the records to publish."""
    svc = _services()
    setup = svc.sender_domains.add(_tenant(svc, tenant), name, "cli", verified=verified)
    row = setup.domain
    out.print(
        f'{row["name"]}: add TXT _sealmail.{row["name"]} "sealmail-verification={row["verification_token"]}"',
        markup=False,
        soft_wrap=True,
    )
    _print_records(setup.records)


def _print_records(records: list[dkim.DnsRecord]) -> None:
    for rec in records:
        # soft_wrap: a 2048-bit key must stay on one line to be copied into a zone.
        out.print(
            f"{rec.purpose}: {rec.name} {rec.type} {rec.value}", markup=False, highlight=False, soft_wrap=True
        )


@domains_app.command("records")
@friendly
def domains_records(name: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """The DKIM, SPF, DMARC (and return-path) records to publish for a domain."""
    svc = _services()
    _print_records(svc.sender_domains.records(_tenant(svc, tenant), name))


@domains_app.command("verify")
@friendly
def domains_verify(
    name: str,
    tenant: Annotated[str | None, typer.Option()] = None,
    force: Annotated[
        bool, typer.Option(help="Skip the DNS check (audited as a manual verification).")
    ] = False,
) -> None:
    """Verify a sender domain through its `_sealmail.<domain>` TXT record."""
    svc = _services()
    tenant_id = _tenant(svc, tenant)
    if force:
        svc.sender_domains.mark_verified(tenant_id, name, "cli:forced")
    else:
        asyncio.run(svc.sender_domains.verify(tenant_id, name, "cli", _resolver(svc).txt, asyncio.to_thread))
    out.print(f"{name} verified")


@domains_app.command("check")
@friendly
def domains_check(name: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """Check the published DKIM, SPF and DMARC records; exits 1 when one is wrong."""
    svc = _services()
    results = asyncio.run(
        svc.sender_domains.check(_tenant(svc, tenant), name, _resolver(svc), asyncio.to_thread)
    )
    for c in results:
        mark = "ok  " if c.ok else "FAIL"
        out.print(f"{mark} {c.purpose}: {c.name}  {c.detail}", markup=False, highlight=False)
    if not all(c.ok for c in results):
        raise typer.Exit(1)


def _resolver(svc: Services) -> Resolver:
    from sealmail.net.dns import Resolver

    s = svc.settings
    return Resolver(s.nameservers() or None, timeout=s.dns_timeout_seconds)


@domains_app.command("list")
@friendly
def domains_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    svc = _services()
    for row in svc.tenancy.list_domains(_tenant(svc, tenant)):
        out.print(f"{row['name']}  {'verified' if row['verified_at'] else 'unverified'}")


# -- recipient keys and quarantine ---------------------------------------------------------
rkeys_app = typer.Typer(no_args_is_help=True, help="Recipient OpenPGP / S/MIME certificates.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Messages held by DLP rules.")
app.add_typer(rkeys_app, name="recipient-keys")
app.add_typer(quarantine_app, name="quarantine")


@rkeys_app.command("add")
@friendly
def rkeys_add(
    path: Path,
    tenant: Annotated[str | None, typer.Option()] = None,
    trusted: Annotated[bool, typer.Option(help="S/MIME: vouch for this certificate.")] = False,
) -> None:
    """Add a certificate file (armored/binary OpenPGP, PEM/DER X.509)."""
    svc = _services()
    for row in svc.keydir.upload(_tenant(svc, tenant), path.read_bytes(), "cli", trusted=trusted):
        out.print(f"{row['id']}  {row['kind']}  {row['address']}  {row['fingerprint']}")


@rkeys_app.command("list")
@friendly
def rkeys_list(
    address: Annotated[str | None, typer.Option()] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    svc = _services()
    table = Table("id", "kind", "address", "fingerprint", "source", "expires")
    for row in svc.keydir.list(_tenant(svc, tenant), address=address):
        table.add_row(
            row["id"],
            row["kind"],
            row["address"],
            row["fingerprint"],
            row["source"],
            row["expires_at"].date().isoformat() if row["expires_at"] else "never",
        )
    out.print(table)


@rkeys_app.command("show")
@friendly
def rkeys_show(key_id: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    svc = _services()
    row = svc.keydir.get(_tenant(svc, tenant), key_id)
    data = row["data"]
    sys.stdout.write(data.decode() if data.lstrip().startswith(b"-----") else data.hex() + "\n")


@rkeys_app.command("delete")
@friendly
def rkeys_delete(key_id: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    svc = _services()
    svc.keydir.delete(_tenant(svc, tenant), key_id, "cli")
    out.print(f"deleted {key_id}")


@quarantine_app.command("list")
@friendly
def quarantine_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    from sealmail.tenancy.service import Principal

    svc = _services()
    who = Principal(_tenant(svc, tenant), "cli", frozenset({"admin"}))
    for row in svc.messages.quarantined(who)["data"]:
        found = ", ".join(f"{f['detector']} in {f['location']}" for f in row["dlp"]["findings"] or [])
        out.print(f"{row['id']}  {row['created_at']}  {found}")


@quarantine_app.command("release")
@friendly
def quarantine_release(message_id: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    from sealmail.tenancy.service import Principal

    svc = _services()
    who = Principal(_tenant(svc, tenant), "cli", frozenset({"admin"}))
    result = svc.messages.release(who, message_id)
    out.print(f"released {len(result['released'])} recipient(s) of {message_id}")


# -- keys ----------------------------------------------------------------------------------
@crypto_app.command("rotate")
@friendly
def keys_rotate(
    tenant: Annotated[
        str | None, typer.Option(help="Rotate this tenant's key instead of the master key.")
    ] = None,
    retire_old: Annotated[bool, typer.Option(help="Drop old master keys once rewrapped.")] = True,
) -> None:
    """Rotate the master key (rewrap tenant keys) or a tenant key (rewrap data keys)."""
    from sealmail import audit
    from sealmail.audit import AuditAction

    svc = _services()
    if tenant:
        tenant_id = _tenant(svc, tenant)
        with Progress(console=err) as progress:
            task = progress.add_task("rewrapping message keys", total=None)
            key_id, count = svc.keyring.rotate_tenant_key(tenant_id, lambda n: progress.advance(task, n))
        with svc.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.TENANT_KEY_ROTATED,
                actor="cli",
                tenant_id=tenant_id,
                target=key_id,
                details={"rewrapped": count},
            )
        out.print(f"tenant key {key_id} active; {count} message keys rewrapped")
        return
    old = [k for k in svc.keyfile.key_ids()]
    new_id = svc.keyfile.add_key()
    total = len(svc.tenancy.list_tenants()) or None
    with Progress(console=err) as progress:
        task = progress.add_task("rewrapping tenant keys", total=total)
        count = svc.keyring.rewrap_tenant_keys(lambda n: progress.advance(task, n))
        # Site secrets (return-path and link HMAC roots) are wrapped by the same master key:
        # retiring the old one without rewrapping them would invalidate every issued link.
        svc.site_secrets.rewrap()
    if retire_old:
        for key_id in old:
            svc.keyfile.retire(key_id)
    with svc.engine.begin() as conn:
        audit.append(
            conn,
            action=AuditAction.MASTER_KEY_ROTATED,
            actor="cli",
            target=new_id,
            details={"rewrapped": count, "retired": old if retire_old else []},
        )
    out.print(f"master key {new_id} active; {count} tenant keys rewrapped")


@crypto_app.command("smime-identity")
@friendly
def keys_smime_identity(
    cert: Annotated[Path, typer.Option(help="PEM certificate, leaf first, then its chain.")],
    key: Annotated[Path, typer.Option(help="PEM private key (RSA or EC).")],
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Set the tenant's S/MIME signing identity (the key is sealed under the tenant key)."""
    from sealmail.crypto import smime

    svc = _services()
    try:
        info = svc.identities.set_smime_identity(
            _tenant(svc, tenant), cert.read_bytes(), key.read_bytes(), "cli"
        )
    except smime.CertificateError as exc:
        raise ConfigError(f"{cert}: {exc}") from exc
    out.print(f"S/MIME identity {info['subject']} ({info['fingerprint_sha256']}) until {info['not_after']}")


@crypto_app.command("signing-key")
@friendly
def keys_signing_key(
    address: str,
    tenant: Annotated[str | None, typer.Option()] = None,
    rotate: Annotated[bool, typer.Option(help="Replace the address's key with a new one.")] = False,
) -> None:
    """Print the OpenPGP certificate a sending address signs with (its user id is the address);
    publish it (WKD, keyserver) so recipients can check the signature."""
    svc = _services()
    tenant_id = _tenant(svc, tenant)
    public = None if rotate else svc.identities.pgp_signing_public(tenant_id, address)
    if public is None:
        public = svc.identities.create_pgp_signing_key(tenant_id, address, "cli")
    sys.stdout.write(public.decode())


@crypto_app.command("archive")
@friendly
def keys_archive(
    tenant: Annotated[str | None, typer.Option()] = None,
    export_secret: Annotated[bool, typer.Option(help="Print the SECRET archive key (audited).")] = False,
) -> None:
    """Print the tenant's OpenPGP archive certificate (every PGP message is also encrypted to it)."""
    from sealmail import audit
    from sealmail.audit import AuditAction

    svc = _services()
    tenant_id = _tenant(svc, tenant)
    if export_secret:
        with svc.engine.begin() as conn:
            audit.append(conn, action=AuditAction.ARCHIVE_KEY_EXPORTED, actor="cli", tenant_id=tenant_id)
        sys.stdout.write(svc.identities.archive_secret(tenant_id).decode())
        return
    sys.stdout.write(svc.identities.archive_public(tenant_id).decode())


@audit_app.command("verify")
@friendly
def audit_verify() -> None:
    """Check the hash chain and its signed anchors; exit 1 and name what was tampered with."""
    from sealmail import audit

    svc = _services()
    total = audit.count(svc.engine)
    with Progress(console=err) as progress:
        task = progress.add_task("verifying audit chain", total=total)
        anchored = build_evidence(svc).anchors.verify(lambda n: progress.advance(task, n))
    result = anchored.chain
    for problem in anchored.problems:
        err.print(f"[red]audit log tampered:[/red] {problem}")
    if anchored.ok:
        out.print(f"audit log intact: {result.checked} entries, {anchored.anchors} anchors agree")
        return
    if not result.ok:
        where = f"first bad entry: {result.first_bad_seq}"
        err.print(f"[red]audit log tampered:[/red] {result.problem} ({where})")
    raise typer.Exit(1)


@config_app.command("show")
@friendly
def config_show() -> None:
    """Print the effective settings (secrets masked)."""
    settings = _settings()
    for name, value in settings.model_dump().items():
        if "password" in name and value:
            value = "********"
        out.print(f"SEALMAIL_{name.upper()}={value}")


@config_app.command("docs")
def config_docs() -> None:
    """Print the settings table for the README."""
    sys.stdout.write(settings_table())


def settings_table() -> str:
    lines = ["| setting | default | description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]  # zero-arg factories
        if isinstance(default, Path):
            default = str(default)
        shown = "" if default in (None, "", []) else f"`{default}`"
        lines.append(f"| `SEALMAIL_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
