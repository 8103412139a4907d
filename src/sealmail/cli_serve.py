"""Running Sealmail from the command line: ``init``, ``migrate``, ``serve`` (with its dev
banner), ``send`` a test message and list what the capture sink ``captured``.

The commands are registered on the ``sealmail`` app by ``sealmail.cli``."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from sealmail.app import Services, build_users, console_url
from sealmail.cli_base import _services, _settings, _tenant, err, friendly, out
from sealmail.config import ConfigError


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


@friendly
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from sealmail.store import db
    from sealmail.store import migrate as mig

    settings = _settings()
    engine = db.create_engine(settings.resolved_database_url)
    mig.upgrade(engine)
    out.print(f"schema at revision {mig.current_revision(engine)}")


@friendly
def serve(
    role: Annotated[list[str] | None, typer.Option(help="api, smtp or worker; repeat; default all.")] = None,
    dev_banner: Annotated[bool, typer.Option(help="Print a fresh dev API key and a curl example.")] = False,
    child_of: Annotated[
        int | None, typer.Option(hidden=True, help="Internal: a worker child of this `serve` process.")
    ] = None,
) -> None:
    """Run Sealmail: every role (the worker in a child process), or the roles given."""
    from sealmail import heap
    from sealmail.net.event_loop import loop_factory
    from sealmail.runtime import ROLES, configure_logging
    from sealmail.runtime import serve as run_roles
    from sealmail.supervisor import WorkerChildFailed, die_with_parent, worker_children

    if child_of is not None and not die_with_parent(child_of):
        return  # its parent is gone already: nothing to work for
    settings = _settings()
    # The portal runs inside the API server unless it has an origin of its own.
    default_roles = [r for r in ROLES if r != "portal" or not settings.portal_on_api]
    roles = role or default_roles
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ConfigError(f"unknown role {unknown[0]!r}; choose from {', '.join(ROLES)}")
    children = 0 if child_of else worker_children(settings.worker_processes, roles, os.cpu_count())
    configure_logging(settings)
    svc = _services(settings)
    # Printed once the API answers, so the curl it shows works when pasted; soft_wrap: never
    # break the key or the curl line, whatever the terminal width.
    banner = _banner(svc) if dev_banner else None

    def on_ready() -> None:
        heap.settle()  # start-up state frozen, collections spaced out: sealmail/heap.py
        if banner:
            out.print(banner, soft_wrap=True)

    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            runner.run(run_roles(svc, roles, on_ready=on_ready, worker_children=children, child_of=child_of))
    except WorkerChildFailed as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def _banner(svc: Services) -> str:
    from sealmail.bootstrap import DEV_DOMAIN

    settings = svc.settings
    tenant_id = _tenant(svc, None)
    for key in svc.tenancy.list_api_keys(tenant_id):
        if key.name == "make-run" and key.revoked_at is None:
            svc.tenancy.revoke_api_key(tenant_id, key.id, actor="make-run")
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


@friendly
def captured(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 10,
    full: Annotated[bool, typer.Option(help="Print the whole message.")] = False,
    sms: Annotated[
        bool, typer.Option("--sms", help="List captured texts instead (`sms_provider=capture`).")
    ] = False,
) -> None:
    """List what the built-in capture sink received."""
    from sealmail.delivery.capture_sink import list_all

    svc = _services()
    if sms:
        texts = svc.texting.captured(limit)
        if not texts:
            out.print("no texts captured yet — texts go to contacts added with `PUT /v1/sms/contacts/…`")
        for t in texts:
            out.print(f"[bold]{t['created_at']}[/bold] {t['id']} {t['from']} → {t['to']} ({t['status']})")
            out.print(f"  {t['text']}", markup=False, highlight=False, emoji=False)
        return
    rows = list_all(svc.engine, limit)
    if not rows:
        out.print("nothing captured yet — is `make run` (or `sealmail serve`) running?")
        return
    for row in rows:
        out.print(
            f"[bold]{row.received_at.isoformat()}[/bold] {row.message_id} → {', '.join(row.rcpt_to)}"
            f" ({row.size} bytes, {row.tls_version or 'plaintext'})"
        )
        if full:
            out.print(row.data, markup=False, highlight=False, emoji=False)
