"""Tenants, sender domains, API keys and SMTP credentials.

``Tenancy`` is the facade; the API-key and SMTP-credential half lives in
``tenancy.credentials`` (the ``Credentials`` mixin) and is re-exported here.

Secrets are shown once and stored as argon2 hashes.  An API key is
``sm_<lookup>_<secret>``: the lookup part finds the row through an index without
revealing anything, the secret part is verified with argon2.  Because argon2 is
deliberately slow (tens of milliseconds), a verified key is remembered in process memory
as a SHA-256 of the whole key for ``CACHE_SECONDS``; revocation is re-read from the
database at least that often, and takes effect at once in the revoking process.  SMTP
credentials are remembered the same way (a SHA-256 of username and password): a client that
opens a connection per message would otherwise pay argon2 (~0.2 s of CPU) per message.

The hot intake paths also read verified sender domains and tenant settings through short
caches (``CACHE_SECONDS``); a change made here drops the entry in this process at once, and
other processes (``serve --role smtp`` next to ``--role api``) see it within that bound.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import idna
import sqlalchemy as sa
from anyio import to_thread
from argon2 import PasswordHasher
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.addresses import header_text_problem
from sealmail.errors import Conflict, NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import sender_domains, tenants
from sealmail.store.ttl_cache import TtlCache
from sealmail.tenancy.credentials import (
    ARGON2_CONCURRENCY as ARGON2_CONCURRENCY,
)
from sealmail.tenancy.credentials import (
    CACHE_SECONDS as CACHE_SECONDS,
)
from sealmail.tenancy.credentials import (
    SCOPES as SCOPES,
)
from sealmail.tenancy.credentials import (
    Credentials,
    _CachedCredential,
    _CachedKey,
    _now,
)
from sealmail.tenancy.credentials import (
    Principal as Principal,
)
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.values import Tenant as Tenant

TxtLookup = Callable[[str], Awaitable[list[str]]]


def _ascii(name: str) -> str:
    try:
        return str(idna.encode(name.strip().rstrip(".").lower(), uts46=True).decode())
    except idna.IDNAError as exc:
        raise ValidationFailed([{"field": "name", "message": f"not a domain name: {exc}"}]) from exc


@dataclass(frozen=True, slots=True)
class SenderDomain:
    """A sender domain of a tenant; ``verified_at`` is None until its TXT token is seen."""

    id: str
    tenant_id: str
    name: str
    verification_token: str
    verified_at: datetime | None
    created_at: datetime


class Tenancy(Credentials):
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        hasher: PasswordHasher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self.keyring = keyring
        self.hasher = hasher or PasswordHasher()
        self._keys: dict[str, _CachedKey] = {}
        self._lock = threading.Lock()
        # Per-lookup locks (with a count of holders, dropped when unused): concurrent first
        # requests with one key verify it once; the others wait and find it cached.
        self._key_locks: dict[str, tuple[threading.Lock, list[int]]] = {}
        # At most this many argon2 verifications at once: each takes tens of milliseconds of
        # CPU and memory, and a burst of new keys must not starve everything else.
        self._argon_slots = threading.BoundedSemaphore(ARGON2_CONCURRENCY)
        self._dummy: str | None = None
        self._smtp: dict[str, _CachedCredential] = {}
        self._smtp_live: TtlCache[str, bool] = TtlCache(CACHE_SECONDS, clock=clock)
        self._verified: TtlCache[str, frozenset[str]] = TtlCache(CACHE_SECONDS, clock=clock)
        self._settings: TtlCache[str, MappingProxyType[str, Any]] = TtlCache(CACHE_SECONDS, clock=clock)

    # -- tenants ---------------------------------------------------------------------------
    def create_tenant(self, name: str, actor: str = "cli") -> str:
        if not name.strip():
            raise ValidationFailed([{"field": "name", "message": "must not be empty"}])
        # The name is the display name of the portal's sign-in code mail and of delivered
        # form submissions: header text.
        problem = header_text_problem(name)
        if problem is not None:
            raise ValidationFailed([{"field": "name", "message": problem}])
        tenant_id = new_id("ten")
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(tenants).values(id=tenant_id, name=name.strip(), settings={}, created_at=_now())
            )
            key_id = self.keyring.create_tenant_key(conn, tenant_id)
            audit.append(
                conn,
                action=AuditAction.TENANT_CREATED,
                actor=actor,
                tenant_id=tenant_id,
                target=tenant_id,
                details={"name": name},
            )
            audit.append(
                conn, action=AuditAction.TENANT_KEY_CREATED, actor=actor, tenant_id=tenant_id, target=key_id
            )
        return tenant_id

    def list_tenants(self) -> list[Tenant]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(sa.select(tenants).order_by(tenants.c.created_at)).mappings()
            return [Tenant.from_row(r) for r in rows]

    def get_tenant(self, tenant_id: str) -> Tenant:
        with db.reader(self.engine) as conn:
            row = conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id)).mappings().first()
        if row is None:
            raise NotFound(f"tenant {tenant_id} not found; list tenants with `sealmail tenants list`")
        return Tenant.from_row(row)

    def resolve_tenant(self, ref: str) -> str:
        """A tenant's id from its id or its name (case-insensitive), as operators type it."""
        with db.reader(self.engine) as conn:
            if conn.execute(sa.select(tenants.c.id).where(tenants.c.id == ref)).first():
                return ref
            named = list(
                conn.execute(
                    sa.select(tenants.c.id).where(sa.func.lower(tenants.c.name) == ref.strip().lower())
                ).scalars()
            )
        if len(named) == 1:
            return str(named[0])
        if named:
            raise Conflict(
                f"{len(named)} tenants are named {ref!r}; pass one of their ids: {', '.join(named)}"
            )
        raise NotFound(f"tenant {ref} not found; list tenants with `sealmail tenants list`")

    def tenant_settings(self, tenant_id: str) -> MappingProxyType[str, Any]:
        """A tenant's settings for hot paths, at most ``CACHE_SECONDS`` old (read-only)."""
        cached = self._settings.get(tenant_id)
        if cached is not None:
            return cached
        stamp = self._settings.stamp()
        settings = MappingProxyType(self.get_tenant(tenant_id).settings)
        self._settings.put(tenant_id, settings, stamp)
        return settings

    def cached_tenant_settings(self, tenant_id: str) -> MappingProxyType[str, Any] | None:
        """``tenant_settings`` when the cache holds it fresh, else None; no I/O, so an event
        loop may ask."""
        return self._settings.get(tenant_id)

    def update_settings(
        self,
        tenant_id: str,
        changes: dict[str, Any],
        actor: str,
        *,
        also: Callable[[Connection, str, str, dict[str, Any], dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Apply ``changes``; ``also(conn, tenant_id, actor, before, after)`` runs in the same
        transaction (a feature's own audit entry for a setting it cares about)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(tenants.c.settings).where(tenants.c.id == tenant_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"tenant {tenant_id} not found")
            settings = dict(row.settings or {})
            before = dict(settings)
            for key, value in changes.items():
                if value is None:
                    settings.pop(key, None)
                else:
                    settings[key] = value
            conn.execute(sa.update(tenants).where(tenants.c.id == tenant_id).values(settings=settings))
            audit.append(
                conn,
                action=AuditAction.TENANT_SETTINGS_CHANGED,
                actor=actor,
                tenant_id=tenant_id,
                target=tenant_id,
                details={"before": before, "after": settings},
            )
            if also is not None:
                also(conn, tenant_id, actor, before, settings)
        self._settings.drop(tenant_id)
        return settings

    # -- sender domains ----------------------------------------------------------------------
    def add_domain(self, tenant_id: str, name: str, actor: str, verified: bool = False) -> SenderDomain:
        ascii_name = _ascii(name)
        if "." not in ascii_name:
            raise ValidationFailed([{"field": "name", "message": "not a domain name"}])
        row: dict[str, Any] = {
            "id": new_id("dom"),
            "tenant_id": tenant_id,
            "name": ascii_name.lower(),
            "verification_token": secrets.token_hex(16),
            "verified_at": _now() if verified else None,
            "created_at": _now(),
        }
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(sender_domains.c.id).where(
                    sender_domains.c.tenant_id == tenant_id, sender_domains.c.name == row["name"]
                )
            ).first()
            if exists:
                raise Conflict(f"domain {row['name']} is already registered for this tenant")
            _refuse_if_verified_elsewhere(conn, tenant_id, str(row["name"]))
            conn.execute(sa.insert(sender_domains).values(**row))
            audit.append(
                conn,
                action=AuditAction.DOMAIN_ADDED,
                actor=actor,
                tenant_id=tenant_id,
                target=str(row["id"]),
                details={"domain": row["name"], "verified": verified},
            )
        self._verified.drop(tenant_id)
        return SenderDomain(**row)

    def mark_domain_verified(self, tenant_id: str, name: str, actor: str) -> None:
        with self.engine.begin() as conn:
            # Several tenants may claim a name; the first to prove control owns it.
            _refuse_if_verified_elsewhere(conn, tenant_id, _ascii(name))
            result = conn.execute(
                sa.update(sender_domains)
                .where(sender_domains.c.tenant_id == tenant_id, sender_domains.c.name == _ascii(name))
                .values(verified_at=_now())
            )
            if result.rowcount == 0:
                raise NotFound(f"domain {name} is not registered for this tenant")
            audit.append(
                conn,
                action=AuditAction.DOMAIN_VERIFIED,
                actor=actor,
                tenant_id=tenant_id,
                target=name.lower(),
            )
        self._verified.drop(tenant_id)

    def domain(self, tenant_id: str, name: str) -> SenderDomain:
        with db.reader(self.engine) as conn:
            row = (
                conn.execute(
                    sa.select(sender_domains).where(
                        sender_domains.c.tenant_id == tenant_id,
                        sender_domains.c.name == _ascii(name),
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"domain {name} is not registered for this tenant")
        return SenderDomain(**row)

    async def verify_domain(self, tenant_id: str, name: str, actor: str, txt: TxtLookup) -> SenderDomain:
        """Mark a domain verified when ``_sealmail.<domain>`` carries its token (TXT).

        Proving control through DNS is what keeps one tenant from sending as another
        organisation's domain.
        """
        # Called on the event loop: the database work goes to a thread, the lookup is async.
        row = await to_thread.run_sync(self.domain, tenant_id, name)
        if row.verified_at is None:
            expected = f"sealmail-verification={row.verification_token}"
            records = await txt(f"_sealmail.{row.name}")
            if expected not in [r.strip() for r in records]:
                raise Conflict(
                    f'TXT _sealmail.{row.name} does not contain "{expected}" yet; '
                    "publish it and try again (DNS changes can take a while to appear)"
                )
            await to_thread.run_sync(self.mark_domain_verified, tenant_id, row.name, actor)
        return await to_thread.run_sync(self.domain, tenant_id, name)

    def verified_domains(self, conn: Connection, tenant_id: str) -> set[str]:
        rows = conn.execute(
            sa.select(sender_domains.c.name).where(
                sender_domains.c.tenant_id == tenant_id, sender_domains.c.verified_at.is_not(None)
            )
        )
        return {r.name for r in rows}

    def cached_verified_sender_domain(self, tenant_id: str, domain: str) -> bool:
        """True when the fresh cached set holds ``domain``; no I/O, so an event loop may ask.

        False means "ask ``is_verified_sender_domain``", never "not verified".
        """
        cached = self._verified.get(tenant_id)
        return cached is not None and domain.lower() in cached

    def is_verified_sender_domain(self, tenant_id: str, domain: str) -> bool:
        """Whether ``domain`` (ASCII) is verified for the tenant, for a check per message.

        The set is cached for ``CACHE_SECONDS``; a domain missing from it is asked again, so
        one verified a moment ago (in another process) is never refused.
        """
        name = domain.lower()
        cached = self._verified.get(tenant_id)
        if cached is not None and name in cached:
            return True
        stamp = self._verified.stamp()
        with db.reader(self.engine) as conn:
            verified = frozenset(self.verified_domains(conn, tenant_id))
        self._verified.put(tenant_id, verified, stamp)
        return name in verified

    def list_domains(self, tenant_id: str) -> list[SenderDomain]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(sender_domains)
                .where(sender_domains.c.tenant_id == tenant_id)
                .order_by(sender_domains.c.name)
            ).mappings()
            return [SenderDomain(**r) for r in rows]


def _refuse_if_verified_elsewhere(conn: Connection, tenant_id: str, name: str) -> None:
    """A domain verified by one tenant cannot be registered or verified by another.

    Otherwise a second tenant could send as (and be DKIM-signed for) an organisation
    whose domain it never proved control of.  Unverified claims may coexist: the first
    verification wins.  On PostgreSQL an advisory lock on the name serialises two
    concurrent verifications (SQLite write transactions are already serial: IMMEDIATE).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"domain:{name}"})
    taken = conn.execute(
        sa.select(sender_domains.c.id).where(
            sender_domains.c.name == name.lower(),
            sender_domains.c.tenant_id != tenant_id,
            sender_domains.c.verified_at.is_not(None),
        )
    ).first()
    if taken is not None:
        raise Conflict(
            f"domain {name.lower()} is verified by another organisation on this service; "
            "ask support if you control it"
        )
