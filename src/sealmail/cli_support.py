"""The services and tenant a CLI sub-command works on, with errors turned into exit code 2.

Shared by the feature sub-apps (``sealmail webhooks``, ``sealmail suppressions``), which
the main CLI registers and so cannot import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from sealmail.app import Services, build_services
from sealmail.config import ConfigError, load_settings
from sealmail.errors import SealmailError

err = Console(stderr=True, highlight=False)


@contextmanager
def tenant_session(tenant: str | None) -> Iterator[tuple[Services, str]]:
    """Services and the tenant id (``tenant``, or the only tenant there is); closed after."""
    try:
        settings = load_settings()
        if not settings.resolved_master_key_file.exists():
            raise ConfigError("no master key; run `sealmail init` first")
        svc = build_services(settings)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        if tenant:
            tenant_id = str(svc.tenancy.get_tenant(tenant)["id"])
        else:
            rows = svc.tenancy.list_tenants()
            if len(rows) != 1:
                err.print(f"[red]error:[/red] {len(rows)} tenants exist; pass --tenant <id>")
                raise typer.Exit(2)
            tenant_id = str(rows[0]["id"])
        yield svc, tenant_id
    except SealmailError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from exc
    finally:
        svc.close()
