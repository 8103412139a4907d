"""The ``sealmail`` command line (Typer + Rich): the ``app``, its sub-apps, and the bindings
that give each feature's commands their service.

Command groups live in modules named for them: ``cli_serve`` (init, migrate, serve, send,
captured), ``cli_admin`` (tenants, api-keys, smtp-credentials, domains, keys), and each
feature's own ``<feature>/cli.py``; ``cli_base`` holds what they share."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from sealmail.app import (
    Services,
    build_evidence,
    build_portal_lifecycle,
    build_tlsrpt_sender,
    build_users,
    build_webhook_endpoints,
    console_url,
)
from sealmail.cli_admin import crypto_app, domains_app, keys_app, smtp_app, tenants_app
from sealmail.cli_backup import backup_app, restore_cmd
from sealmail.cli_base import _services, _settings, _tenant, err, feature_session, friendly, out
from sealmail.cli_policy import policy_app
from sealmail.cli_serve import _banner, captured, init, migrate, send, serve
from sealmail.cli_support import write_data
from sealmail.client.cli import remote_app
from sealmail.config import Settings
from sealmail.evidence import cli as evidence_cli
from sealmail.evidence import deps_cli, review_cli
from sealmail.marketing import cli as marketing_cli
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

# Re-exported: tests and the feature modules reach these through ``sealmail.cli``.
__all__ = ["_banner", "app", "feature_session", "friendly", "main", "settings_table"]

# Locals are never shown in tracebacks: they may hold keys or message content.
app = typer.Typer(
    no_args_is_help=True, help="Sealmail: secure email for healthcare.", pretty_exceptions_show_locals=False
)
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
app.add_typer(policy_app, name="policy")
app.add_typer(backup_app, name="backup")
app.command("restore")(restore_cmd)


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
deps_cli.session.bind(feature_session(build_evidence))
evidence_cli.evidence_app.command("deps")(deps_cli.deps_cmd)
review_cli.session.bind(feature_session(build_evidence))
evidence_cli.evidence_app.add_typer(review_cli.review_app, name="review")
app.add_typer(evidence_cli.evidence_app, name="evidence")
app.command("verify")(evidence_cli.verify_cmd)
audit_app.command("anchor")(evidence_cli.anchor_cmd)
users_cli.session.bind(feature_session(lambda svc: UsersCli(build_users(svc), console_url(svc.settings))))
tlsrpt_cli.session.bind(feature_session(lambda svc: svc.tlsrpt))
tlsrpt_cli.sender_session.bind(feature_session(build_tlsrpt_sender))
marketing_cli.session.bind(feature_session(lambda svc: svc.marketing))
app.add_typer(marketing_cli.marketing_app, name="marketing")

for _command in (init, migrate, serve, send, captured):
    app.command()(_command)


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
        out.print(f"{row.id}  {row.kind}  {row.address}  {row.fingerprint}")


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
            row.id,
            row.kind,
            row.address,
            row.fingerprint,
            row.source,
            row.expires_at.date().isoformat() if row.expires_at else "never",
        )
    out.print(table)


@rkeys_app.command("show")
@friendly
def rkeys_show(key_id: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    svc = _services()
    data = svc.keydir.get(_tenant(svc, tenant), key_id).data
    # A recipient's key comes from outside (WKD, an upload): escaped on a terminal, exact in a pipe.
    write_data(data.decode() if data.lstrip().startswith(b"-----") else data.hex() + "\n")


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
    for held in svc.messages.quarantined(who).items:
        found = ", ".join(f"{f['detector']} in {f['location']}" for f in held.dlp.findings or ())
        created = held.created_at.isoformat() if held.created_at else None
        out.print(f"{held.id}  {created}  {found}")


@quarantine_app.command("release")
@friendly
def quarantine_release(message_id: str, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    from sealmail.tenancy.service import Principal

    svc = _services()
    who = Principal(_tenant(svc, tenant), "cli", frozenset({"admin"}))
    result = svc.messages.release(who, message_id)
    out.print(f"released {len(result.recipient_ids)} recipient(s) of {message_id}")


@audit_app.command("verify")
@friendly
def audit_verify(
    file: Annotated[
        Path | None,
        typer.Argument(help="A signed audit export (JSON) to check offline, without the database."),
    ] = None,
    key: Annotated[str | None, typer.Option(help="The tenant's evidence key fingerprint you trust.")] = None,
) -> None:
    """Check the hash chain and its signed anchors (or, given FILE, a signed export offline);
    exit 1 and name what was tampered with."""
    from sealmail import audit

    if file is not None:
        _verify_export(file, key)
        return
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


def _verify_export(file: Path, key: str | None) -> None:
    from sealmail.console.audit_export import verify_export

    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err.print(f"[red]not verified:[/red] {file} is not a readable JSON document ({exc})", soft_wrap=True)
        raise typer.Exit(1) from exc
    verdict = verify_export(doc, key)
    for problem in verdict.problems:
        err.print(f"[red]tampered:[/red] {problem}", soft_wrap=True)
    if not verdict.ok:
        raise typer.Exit(1)
    count = len(doc["body"]["entries"])
    out.print(
        f"verified: audit export of {count} entries, signed by key {verdict.key_fingerprint}", soft_wrap=True
    )
    if key is None:
        out.print("note: pass --key FINGERPRINT to check who signed it, not only that it is intact")


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
