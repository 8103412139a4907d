"""API keys created by console users: they carry their creator and scopes, and die with them
(and so do the SMTP credentials they, or their keys, made).

The key itself is made by the tenancy service (``Tenancy.create_api_key``, handed in as
``KeyMaker``); this module records who made it and revokes a user's keys inside the
transaction that disables the user.  A revoked key may still be answered from an API
process's few-second verification cache (``tenancy.service.CACHE_SECONDS``), as any
revocation is.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound, PermissionDenied
from sealmail.store import db
from sealmail.store.tables import api_keys, smtp_credentials
from sealmail.users import roles
from sealmail.users.model import Clock, Session
from sealmail.users.roles import Permission
from sealmail.users.tables import console_api_keys, console_users

KeyMaker = Callable[[str, str, Iterable[str], str], tuple[str, str]]
# ``Tenancy.forget(key ids, credential ids)``: this process's cached verifications dropped
# once a revocation commits, so they are refused here at once, not a few seconds later.
Forget = Callable[[Collection[str], Collection[str]], None]


def forget_nothing(_keys: Collection[str], _credentials: Collection[str]) -> None:
    """No credential cache in this process to drop (a console built without the API)."""


@dataclass(frozen=True, slots=True)
class Revoked:
    """What one revocation took: API key ids and SMTP credential ids."""

    key_ids: tuple[str, ...] = ()
    credential_ids: tuple[str, ...] = ()


# ``Tenancy.create_smtp_credential(tenant_id, actor)``: (credential id, username, password).
SmtpMaker = Callable[[str, str], tuple[str, str, str]]


def _made_through(conn: Connection, tenant_id: str, roots: set[str]) -> set[str]:
    """``roots`` and every API key made by one of them, or by a key of theirs, transitively."""
    makers = set(roots)
    for _ in range(50):  # a chain of keys making keys is short; the bound keeps a loop finite
        more = set(
            conn.execute(
                sa.select(api_keys.c.id).where(
                    api_keys.c.tenant_id == tenant_id,
                    api_keys.c.created_by.in_(sorted(makers)),
                    api_keys.c.id.not_in(sorted(makers)),
                )
            ).scalars()
        )
        if not more:
            break
        makers |= more
    return makers


def _console_keys(conn: Connection, tenant_id: str, user_id: str) -> set[str]:
    return set(
        conn.execute(
            sa.select(console_api_keys.c.api_key_id).where(
                console_api_keys.c.tenant_id == tenant_id, console_api_keys.c.user_id == user_id
            )
        ).scalars()
    )


def revoke_for_user(
    conn: Connection,
    tenant_id: str,
    user_id: str,
    actor: str,
    now: datetime,
    reason: str = "creator_disabled",
    keeping_role: str | None = None,
) -> Revoked:
    """Revoke live API keys and SMTP credentials behind ``user_id``, in the caller's
    transaction: made by them in the console, or through one of their keys.

    With ``keeping_role`` (a role change that keeps the right to make keys), only what that
    role could not have made dies: keys carrying a scope it may not grant, everything made
    through them, and SMTP credentials if it may not grant ``send``."""
    person = f"user:{user_id}"
    doomed = _made_through(conn, tenant_id, {person} | _console_keys(conn, tenant_id, user_id))
    if keeping_role is not None:
        beyond = {
            key_id
            for key_id, scopes in conn.execute(
                sa.select(api_keys.c.id, api_keys.c.scopes).where(
                    api_keys.c.tenant_id == tenant_id, api_keys.c.id.in_(sorted(doomed - {person}))
                )
            ).all()
            if not all(roles.may_grant_scope(keeping_role, s) for s in scopes)
        }
        keeps_send = roles.may_grant_scope(keeping_role, "send")
        doomed = _made_through(conn, tenant_id, beyond) | (set() if keeps_send else {person})
    makers = sorted(doomed)
    key_ids = list(
        conn.execute(
            sa.select(api_keys.c.id).where(
                api_keys.c.tenant_id == tenant_id, api_keys.c.id.in_(makers), api_keys.c.revoked_at.is_(None)
            )
        ).scalars()
    )
    cred_ids = list(
        conn.execute(
            sa.select(smtp_credentials.c.id).where(
                smtp_credentials.c.tenant_id == tenant_id,
                smtp_credentials.c.created_by.in_(makers),
                smtp_credentials.c.revoked_at.is_(None),
            )
        ).scalars()
    )
    if key_ids:
        conn.execute(sa.update(api_keys).where(api_keys.c.id.in_(key_ids)).values(revoked_at=now))
    if cred_ids:
        conn.execute(
            sa.update(smtp_credentials).where(smtp_credentials.c.id.in_(cred_ids)).values(revoked_at=now)
        )
    for action, ids in (
        (AuditAction.API_KEY_REVOKED, key_ids),
        (AuditAction.SMTP_CREDENTIAL_REVOKED, cred_ids),
    ):
        for target in ids:
            audit.append(
                conn, action=action, actor=actor, tenant_id=tenant_id, target=target,
                details={"reason": reason, "creator": user_id},
            )  # fmt: skip
    return Revoked(tuple(key_ids), tuple(cred_ids))


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """An API key as the console lists it (never its secret)."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    creator: str | None  # the console user who made it, if one did


@dataclass(frozen=True, slots=True)
class SmtpCredentialRow:
    """An SMTP credential as the console lists it (never its password)."""

    id: str
    username: str
    stream: str
    created_at: datetime
    revoked_at: datetime | None
    creator: str  # a console user's email, the API key that made it, or "API or CLI"


class UserKeys:
    def __init__(
        self,
        engine: Engine,
        make_key: KeyMaker,
        clock: Clock,
        make_smtp: SmtpMaker | None = None,
        forget: Forget = forget_nothing,
    ) -> None:
        self.engine = engine
        self.make_key = make_key
        self.make_smtp = make_smtp
        self.now = clock
        self.forget = forget

    # -- SMTP credentials: made by a person (``created_by`` is them), dying with them ---------
    def create_smtp(self, who: Session) -> tuple[str, str]:
        """A new SMTP credential for ``who``'s organization: ``(username, password shown once)``."""
        self._may(who)
        if self.make_smtp is None:
            raise NotFound("SMTP credentials are not made from this console")
        _, username, password = self.make_smtp(who.tenant_id, who.actor)
        return username, password

    def list_smtp(self, who: Session) -> list[SmtpCredentialRow]:
        self._may(who)
        sc = smtp_credentials.c
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(sc.id, sc.username, sc.stream, sc.created_at, sc.revoked_at, sc.created_by)
                .where(sc.tenant_id == who.tenant_id)
                .order_by(sc.created_at.desc())
            ).all()
            emails = dict(
                conn.execute(
                    sa.select(console_users.c.id, console_users.c.email).where(
                        console_users.c.tenant_id == who.tenant_id
                    )
                ).all()
            )
        out = []
        for r in rows:
            maker = str(r.created_by or "")
            creator = emails.get(maker.removeprefix("user:")) if maker.startswith("user:") else None
            shown = creator or (maker if maker.startswith("key_") else "API or CLI")
            out.append(SmtpCredentialRow(r.id, r.username, r.stream, r.created_at, r.revoked_at, shown))
        return out

    def revoke_smtp(self, who: Session, cred_id: str) -> None:
        self._may(who)
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.update(smtp_credentials)
                .where(
                    smtp_credentials.c.tenant_id == who.tenant_id,
                    smtp_credentials.c.id == cred_id,
                    smtp_credentials.c.revoked_at.is_(None),
                )
                .values(revoked_at=self.now())
            ).rowcount
            if not found:
                raise NotFound("no such live SMTP credential in this organization")
            audit.append(
                conn, action=AuditAction.SMTP_CREDENTIAL_REVOKED, actor=who.actor, tenant_id=who.tenant_id,
                target=cred_id,
            )  # fmt: skip
        self.forget((), (cred_id,))

    def create(self, who: Session, name: str, scopes: Iterable[str]) -> tuple[str, str]:
        """A new key owned by ``who``: ``(key id, secret shown once)``."""
        self._may(who)
        scopes = list(scopes)
        if refused := [s for s in scopes if not roles.may_grant_scope(who.role, s)]:
            raise PermissionDenied(
                f"your role cannot put {', '.join(refused)} on a key: a key may only do what its maker may"
                " (ask an owner for a key with that scope)"
            )
        key_id, secret = self.make_key(who.tenant_id, name.strip()[:200] or "console", scopes, who.actor)
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(console_api_keys).values(
                    api_key_id=key_id, tenant_id=who.tenant_id, user_id=who.user_id, created_at=self.now()
                )
            )
        return key_id, secret

    def list_keys(self, who: Session) -> list[ApiKeyRow]:
        self._may(who)
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    api_keys.c.id, api_keys.c.name, api_keys.c.scopes, api_keys.c.created_at,
                    api_keys.c.revoked_at, api_keys.c.last_used_at, console_users.c.email.label("creator"),
                )
                .select_from(api_keys)
                .outerjoin(console_api_keys, console_api_keys.c.api_key_id == api_keys.c.id)
                .outerjoin(console_users, console_users.c.id == console_api_keys.c.user_id)
                .where(api_keys.c.tenant_id == who.tenant_id)
                .order_by(api_keys.c.created_at.desc())
            ).all()  # fmt: skip
        return [ApiKeyRow(*r) for r in rows]

    def revoke(self, who: Session, key_id: str) -> None:
        self._may(who)
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.update(api_keys)
                .where(
                    api_keys.c.tenant_id == who.tenant_id,
                    api_keys.c.id == key_id,
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=self.now())
            ).rowcount
            if not found:
                raise NotFound("no such live API key in this organization")
            audit.append(
                conn,
                action=AuditAction.API_KEY_REVOKED,
                actor=who.actor,
                tenant_id=who.tenant_id,
                target=key_id,
            )
        self.forget((key_id,), ())

    @staticmethod
    def _may(who: Session) -> None:
        if not who.may(Permission.MANAGE_API_KEYS):
            raise PermissionDenied("your role cannot manage API keys")
