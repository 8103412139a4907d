"""Administering an installation from the command line: tenants, API keys, SMTP
credentials, sender domains and the master and tenant keys (``sealmail keys``)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from sealmail.app import Services
from sealmail.cli_base import _services, _tenant, err, friendly, out
from sealmail.config import ConfigError
from sealmail.secureline import posture

if TYPE_CHECKING:
    from sealmail.crypto import dkim
    from sealmail.net.dns import Resolver

tenants_app = typer.Typer(no_args_is_help=True, help="Organizations.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (shown once, stored hashed).")
smtp_app = typer.Typer(no_args_is_help=True, help="SMTP submission credentials.")
domains_app = typer.Typer(no_args_is_help=True, help="Verified sender domains.")
crypto_app = typer.Typer(no_args_is_help=True, help="Master and tenant keys.")


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
        table.add_row(row.id, row.name, row.created_at.isoformat())
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
            row.id,
            row.name,
            ",".join(row.scopes),
            row.created_at.isoformat() if row.created_at else "",
            row.revoked_at.isoformat() if row.revoked_at else "",
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
        f'{row.name}: add TXT _sealmail.{row.name} "sealmail-verification={row.verification_token}"',
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
    """Check the published DKIM, SPF and DMARC records (exit 1 when one is wrong), and MTA-STS
    and TLS-RPT (recommended: a warning saying what to publish)."""
    svc = _services()
    results = asyncio.run(
        svc.sender_domains.check(_tenant(svc, tenant), name, _resolver(svc), asyncio.to_thread)
    )
    for c in results:
        mark = "ok  " if c.ok else "warn" if c.purpose in posture.OPTIONAL else "FAIL"
        out.print(f"{mark} {c.purpose}: {c.name}  {c.detail}", markup=False, highlight=False, soft_wrap=True)
    if not all(c.ok for c in results if c.purpose not in posture.OPTIONAL):
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
        out.print(f"{row.name}  {'verified' if row.verified_at else 'unverified'}")


# -- keys ----------------------------------------------------------------------------------
@crypto_app.command("rotate")
@friendly
def keys_rotate(
    tenant: Annotated[
        str | None, typer.Option(help="Rotate this tenant's key instead of the master key.")
    ] = None,
    retire_old: Annotated[
        bool, typer.Option(help="Drop the old master keys, or the tenant's old keys, once rewrapped.")
    ] = True,
    grace: Annotated[
        float,
        typer.Option(
            help="Tenant keys: seconds to wait before retiring the old key, so running processes "
            "stop sealing under it (they re-read the active key every 30 s)."
        ),
    ] = 35.0,
) -> None:
    """Rotate the master key (rewrap tenant keys) or a tenant key (rewrap data keys)."""
    from sealmail import audit
    from sealmail.audit import AuditAction

    svc = _services()
    if tenant:
        _rotate_tenant_key(svc, _tenant(svc, tenant), retire_old, grace)
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


def _rotate_tenant_key(svc: Services, tenant_id: str, retire_old: bool, grace: float) -> None:
    from sealmail import audit
    from sealmail.audit import AuditAction

    with Progress(console=err) as progress:
        task = progress.add_task("rewrapping data keys", total=None)
        rotation = svc.key_rotation.rotate(tenant_id, lambda n: progress.advance(task, n))
    retired: list[str] = []
    if retire_old:
        if grace > 0:
            err.print(f"waiting {grace:g} s for running processes to take up the new key")
            time.sleep(grace)
        retirement = svc.key_rotation.retire(tenant_id)
        retired = retirement.retired
    with svc.engine.begin() as conn:
        audit.append(
            conn,
            action=AuditAction.TENANT_KEY_ROTATED,
            actor="cli",
            tenant_id=tenant_id,
            target=rotation.key_id,
            details={"rewrapped": rotation.rewrapped, "retired": retired},
        )
    out.print(
        f"tenant key {rotation.key_id} active; {rotation.total} message keys rewrapped"
        f" ({rotation.rewrapped.get('form_submissions.key_id', 0)} form submissions,"
        f" {rotation.rewrapped.get('sms_texts.key_id', 0)} texts); {len(retired)} old keys retired"
    )


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
    out.print(
        f"S/MIME identity {info.subject} ({info.fingerprint_sha256}) until {info.not_after.isoformat()}"
    )


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
