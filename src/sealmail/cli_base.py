"""What every ``sealmail`` command shares: the consoles, the error handling that turns expected
errors into a message and exit code 2, and how a command gets its built services and tenant.

It sits below the command modules (``sealmail.cli``, ``sealmail.cli_admin``,
``sealmail.cli_serve``) so they can share it without importing each other."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import typer

from sealmail.app import Services, build_services
from sealmail.cli_support import console
from sealmail.config import ConfigError, Settings, load_settings
from sealmail.crypto.vault import KeyError_
from sealmail.errors import SealmailError

out = console(highlight=True)
err = console(stderr=True, highlight=True)
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
        return svc.tenancy.resolve_tenant(tenant)
    rows = svc.tenancy.list_tenants()
    if len(rows) != 1:
        raise ConfigError(
            f"{len(rows)} tenants exist; pass --tenant <name or id> (see `sealmail tenants list`)"
        )
    return rows[0].id


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
