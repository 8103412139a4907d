"""``sealmail users …``: the console's people from the shell.

``create-owner`` is how an installation gets its first console user: it prints a one-time
link that makes the owner choose a password and enrol TOTP.  Changes are audited with
actor ``cli``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from sealmail.cli_support import SessionOpener, console
from sealmail.users import roles
from sealmail.users.service import Users

users_app = typer.Typer(no_args_is_help=True, help="Console users, their roles and sign-in links.")
out = console()

TenantOpt = Annotated[str | None, typer.Option(help="Tenant name or id (needed when several exist).")]


@dataclass(frozen=True, slots=True)
class UsersCli:
    users: Users
    console_url: str  # where the printed links point

    def link(self, token: str) -> str:
        return f"{self.console_url}/welcome/{token}"


session: SessionOpener[UsersCli] = SessionOpener("users")


@users_app.command("create-owner")
def create_owner(
    email: Annotated[str, typer.Argument(help="The owner's email address (their sign-in name).")],
    tenant: TenantOpt = None,
) -> None:
    """Create the tenant's owner (or renew their link) and print a one-time sign-in link."""
    with session(tenant) as (cli, tenant_id):
        token = cli.users.owner_link(tenant_id, email, actor="cli")
        if token is None:
            out.print("that owner has already set up their account; they sign in with password and code")
            raise typer.Exit(1)
        out.print(f"one-time sign-in link (valid {cli.users.policy.link_ttl.days} days, works once):")
        out.print(cli.link(token), soft_wrap=True)


@users_app.command("invite")
def invite(
    email: Annotated[str, typer.Argument(help="Their email address.")],
    role: Annotated[str, typer.Option(help=", ".join(roles.Role))] = roles.Role.SENDER,
    name: Annotated[str, typer.Option()] = "",
    tenant: TenantOpt = None,
) -> None:
    """Create a user with a role and print their one-time sign-in link."""
    with session(tenant) as (cli, tenant_id):
        _, token = cli.users.invite(tenant_id, email, name, role, actor="cli")
        out.print(cli.link(token), soft_wrap=True)


@users_app.command("list")
def list_cmd(tenant: TenantOpt = None) -> None:
    """Every console user of the tenant, one a line."""
    with session(tenant) as (cli, tenant_id):
        for u in cli.users.list_users(tenant_id):
            state = "disabled" if u.disabled_at else ("active" if u.enrolled else "invited")
            out.print(f"{u.id}  {u.email}  {u.role}  {state}")
