"""Tenants, sender domains, API keys and SMTP credentials.

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

import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import idna
import sqlalchemy as sa
from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.tls_policy import Stream
from sealmail.errors import AuthenticationRequired, Conflict, NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import api_keys, sender_domains, smtp_credentials, tenants
from sealmail.store.ttl_cache import TtlCache
from sealmail.tenancy.keyring import Keyring

SCOPES = ("send", "read", "admin")
CACHE_SECONDS = 5.0
ARGON2_CONCURRENCY = 2


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant and the credential used, with its scopes."""

    tenant_id: str
    credential_id: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(slots=True)
class _CachedKey:
    tenant_id: str
    key_id: str
    scopes: frozenset[str]
    digest: bytes
    revoked: bool
    checked_at: float


@dataclass(frozen=True, slots=True)
class _CachedCredential:
    tenant_id: str
    credential_id: str
    stream: str
    secret_hash: str
    digest: bytes
    checked_at: float


TxtLookup = Callable[[str], Awaitable[list[str]]]


def _ascii(name: str) -> str:
    try:
        return str(idna.encode(name.strip().rstrip(".").lower(), uts46=True).decode())
    except idna.IDNAError as exc:
        raise ValidationFailed([{"field": "name", "message": f"not a domain name: {exc}"}]) from exc


def _now() -> datetime:
    return datetime.now(UTC)


class Tenancy:
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
        self._verified: TtlCache[str, frozenset[str]] = TtlCache(CACHE_SECONDS, clock=clock)
        self._settings: TtlCache[str, MappingProxyType[str, Any]] = TtlCache(CACHE_SECONDS, clock=clock)

    # -- tenants ---------------------------------------------------------------------------
    def create_tenant(self, name: str, actor: str = "cli") -> str:
        if not name.strip():
            raise ValidationFailed([{"field": "name", "message": "must not be empty"}])
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

    def list_tenants(self) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(sa.select(tenants).order_by(tenants.c.created_at)).mappings()
            return [dict(r) for r in rows]

    def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            row = conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id)).mappings().first()
        if row is None:
            raise NotFound(f"tenant {tenant_id} not found; list tenants with `sealmail tenants list`")
        return dict(row)

    def tenant_settings(self, tenant_id: str) -> MappingProxyType[str, Any]:
        """A tenant's settings for hot paths, at most ``CACHE_SECONDS`` old (read-only)."""
        cached = self._settings.get(tenant_id)
        if cached is not None:
            return cached
        stamp = self._settings.stamp()
        settings = MappingProxyType(dict(self.get_tenant(tenant_id)["settings"] or {}))
        self._settings.put(tenant_id, settings, stamp)
        return settings

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
    def add_domain(self, tenant_id: str, name: str, actor: str, verified: bool = False) -> dict[str, Any]:
        ascii_name = _ascii(name)
        if "." not in ascii_name:
            raise ValidationFailed([{"field": "name", "message": "not a domain name"}])
        row = {
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
        return row

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

    def domain(self, tenant_id: str, name: str) -> dict[str, Any]:
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
        return dict(row)

    async def verify_domain(self, tenant_id: str, name: str, actor: str, txt: TxtLookup) -> dict[str, Any]:
        """Mark a domain verified when ``_sealmail.<domain>`` carries its token (TXT).

        Proving control through DNS is what keeps one tenant from sending as another
        organisation's domain.
        """
        # Called on the event loop: the database work goes to a thread, the lookup is async.
        row = await to_thread.run_sync(self.domain, tenant_id, name)
        if row["verified_at"] is None:
            expected = f"sealmail-verification={row['verification_token']}"
            records = await txt(f"_sealmail.{row['name']}")
            if expected not in [r.strip() for r in records]:
                raise Conflict(
                    f'TXT _sealmail.{row["name"]} does not contain "{expected}" yet; '
                    "publish it and try again (DNS changes can take a while to appear)"
                )
            await to_thread.run_sync(self.mark_domain_verified, tenant_id, row["name"], actor)
        return await to_thread.run_sync(self.domain, tenant_id, name)

    def verified_domains(self, conn: Connection, tenant_id: str) -> set[str]:
        rows = conn.execute(
            sa.select(sender_domains.c.name).where(
                sender_domains.c.tenant_id == tenant_id, sender_domains.c.verified_at.is_not(None)
            )
        )
        return {r.name for r in rows}

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

    def list_domains(self, tenant_id: str) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(sender_domains)
                .where(sender_domains.c.tenant_id == tenant_id)
                .order_by(sender_domains.c.name)
            ).mappings()
            return [dict(r) for r in rows]

    # -- API keys ----------------------------------------------------------------------------
    def create_api_key(self, tenant_id: str, name: str, scopes: Iterable[str], actor: str) -> tuple[str, str]:
        """Create a key; returns (key id, the full secret key — shown once)."""
        scope_set = sorted(set(scopes))
        bad = [s for s in scope_set if s not in SCOPES]
        if bad or not scope_set:
            raise ValidationFailed(
                [{"field": "scopes", "message": f"choose from {', '.join(SCOPES)}; got {bad or 'none'}"}]
            )
        self.get_tenant(tenant_id)
        lookup = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        key_id = new_id("key")
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(api_keys).values(
                    id=key_id,
                    tenant_id=tenant_id,
                    name=name,
                    lookup=lookup,
                    secret_hash=self.hasher.hash(secret),
                    scopes=scope_set,
                    created_at=_now(),
                )
            )
            audit.append(
                conn,
                action=AuditAction.API_KEY_CREATED,
                actor=actor,
                tenant_id=tenant_id,
                target=key_id,
                details={"name": name, "scopes": scope_set},
            )
        return key_id, f"sm_{lookup}_{secret}"

    def list_api_keys(self, tenant_id: str) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    api_keys.c.id,
                    api_keys.c.name,
                    api_keys.c.scopes,
                    api_keys.c.created_at,
                    api_keys.c.revoked_at,
                    api_keys.c.last_used_at,
                )
                .where(api_keys.c.tenant_id == tenant_id)
                .order_by(api_keys.c.created_at)
            ).mappings()
            return [dict(r) for r in rows]

    def revoke_api_key(self, tenant_id: str, key_id: str, actor: str) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(api_keys.c.lookup).where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
            ).first()
            if row is None:
                raise NotFound(f"API key {key_id} not found")
            conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=_now()))
            audit.append(
                conn, action=AuditAction.API_KEY_REVOKED, actor=actor, tenant_id=tenant_id, target=key_id
            )
        with self._lock:
            self._keys.pop(row.lookup, None)

    def authenticate(self, presented: str) -> Principal:
        """Resolve a presented API key; raises AuthenticationRequired on any mismatch."""
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != "sm" or not parts[1] or not parts[2]:
            raise AuthenticationRequired("missing or malformed API key; send `Authorization: Bearer sm_…`")
        lookup, secret = parts[1], parts[2]
        digest = hashlib.sha256(presented.encode()).digest()
        fresh = self._fresh(lookup, digest)
        if fresh is not None:
            return fresh
        with self._key_lock(lookup):
            # Whoever held the lock before us may have just verified this very key.
            fresh = self._fresh(lookup, digest)
            if fresh is not None:
                return fresh
            return self._verify(lookup, secret, digest)

    def cached_principal(self, presented: str) -> Principal | None:
        """The principal for a key verified less than ``CACHE_SECONDS`` ago, without any I/O.

        ``None`` means "ask ``authenticate``" (not cached, stale, or wrong): the API calls
        this on the event loop and only goes to a thread for the database and argon2.
        """
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != "sm" or not parts[1] or not parts[2]:
            return None
        try:
            return self._fresh(parts[1], hashlib.sha256(presented.encode()).digest())
        except AuthenticationRequired:
            return None

    def _fresh(self, lookup: str, digest: bytes) -> Principal | None:
        cached = self._keys.get(lookup)
        if cached is None or time.monotonic() - cached.checked_at >= CACHE_SECONDS:
            return None
        if not hmac.compare_digest(cached.digest, digest):
            # Not a fast refusal: a wrong secret for a recently used key must cost what a
            # wrong secret for any other key costs, or the timing tells which ids are live.
            return None
        if cached.revoked:
            raise AuthenticationRequired("invalid or revoked API key")
        return Principal(cached.tenant_id, cached.key_id, cached.scopes)

    @contextmanager
    def _key_lock(self, lookup: str) -> Iterator[None]:
        with self._lock:
            lock, holders = self._key_locks.setdefault(lookup, (threading.Lock(), [0]))
            holders[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._lock:
                holders[0] -= 1
                if holders[0] == 0:
                    self._key_locks.pop(lookup, None)

    def _verify(self, lookup: str, secret: str, digest: bytes) -> Principal:
        cached = self._keys.get(lookup)
        now = time.monotonic()
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(
                    api_keys.c.id,
                    api_keys.c.tenant_id,
                    api_keys.c.secret_hash,
                    api_keys.c.scopes,
                    api_keys.c.revoked_at,
                ).where(api_keys.c.lookup == lookup)
            ).first()
        if row is None:
            # The same argon2 work as for a known key, so an unknown key id answers in the
            # same time with the same body: no oracle for which ids exist.
            with self._argon_slots, contextlib.suppress(VerificationError, InvalidHashError):
                self.hasher.verify(self._dummy_hash(), secret)
            raise AuthenticationRequired("invalid or revoked API key")
        if cached is not None and hmac.compare_digest(cached.digest, digest):
            verified = True  # already argon2-verified; only revocation needed re-reading
        else:
            try:
                with self._argon_slots:
                    verified = self.hasher.verify(row.secret_hash, secret)
            except (VerificationError, InvalidHashError):
                verified = False
        if not verified:
            self._record_rejection(row.tenant_id, row.id)
            raise AuthenticationRequired("invalid or revoked API key")
        entry = _CachedKey(
            row.tenant_id, row.id, frozenset(row.scopes), digest, row.revoked_at is not None, now
        )
        with self._lock:
            self._keys[lookup] = entry
        if entry.revoked:
            raise AuthenticationRequired("invalid or revoked API key")
        return Principal(entry.tenant_id, entry.key_id, entry.scopes)

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(24))
        return self._dummy

    def _record_rejection(self, tenant_id: str, key_id: str) -> None:
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.API_KEY_REJECTED,
                actor="anonymous",
                tenant_id=tenant_id,
                target=key_id,
            )

    # -- SMTP credentials --------------------------------------------------------------------
    def create_smtp_credential(
        self, tenant_id: str, actor: str, stream: Stream = Stream.TRANSACTIONAL
    ) -> tuple[str, str, str]:
        """Returns (credential id, username, password — shown once)."""
        self.get_tenant(tenant_id)
        cred_id = new_id("smc")
        username = "smtp_" + secrets.token_hex(6)
        password = secrets.token_urlsafe(24)
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(smtp_credentials).values(
                    id=cred_id,
                    tenant_id=tenant_id,
                    username=username,
                    secret_hash=self.hasher.hash(password),
                    stream=str(stream),
                    created_at=_now(),
                )
            )
            audit.append(
                conn,
                action=AuditAction.SMTP_CREDENTIAL_CREATED,
                actor=actor,
                tenant_id=tenant_id,
                target=cred_id,
                details={"username": username},
            )
        return cred_id, username, password

    def list_smtp_credentials(self, tenant_id: str) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    smtp_credentials.c.id,
                    smtp_credentials.c.username,
                    smtp_credentials.c.stream,
                    smtp_credentials.c.created_at,
                    smtp_credentials.c.revoked_at,
                )
                .where(smtp_credentials.c.tenant_id == tenant_id)
                .order_by(smtp_credentials.c.created_at)
            ).mappings()
            return [dict(r) for r in rows]

    def revoke_smtp_credential(self, tenant_id: str, cred_id: str, actor: str) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(smtp_credentials)
                .where(smtp_credentials.c.id == cred_id, smtp_credentials.c.tenant_id == tenant_id)
                .values(revoked_at=_now())
            )
            if result.rowcount == 0:
                raise NotFound(f"SMTP credential {cred_id} not found")
            audit.append(
                conn,
                action=AuditAction.SMTP_CREDENTIAL_REVOKED,
                actor=actor,
                tenant_id=tenant_id,
                target=cred_id,
            )
        with self._lock:
            self._smtp = {u: c for u, c in self._smtp.items() if c.credential_id != cred_id}

    def authenticate_smtp(self, username: str, password: str) -> tuple[Principal, Stream] | None:
        """Check SMTP AUTH credentials; None (and an audit entry) when they do not match.

        The exact username and password verified less than ``CACHE_SECONDS`` ago answer from
        memory; anything else (a wrong password for a cached user included) takes the full
        path, so a failure costs the same argon2 work and writes the same audit entry.
        """
        digest = hashlib.sha256(f"{len(username)}:{username}:{password}".encode()).digest()
        found = self._fresh_smtp(username, digest)
        if found is not None:
            return found
        with self._key_lock(f"smtp:{username}"):
            # Parallel connections with one credential: the first verifies, the rest find it.
            found = self._fresh_smtp(username, digest)
            if found is not None:
                return found
            return self._verify_smtp(username, password, digest)

    def _fresh_smtp(self, username: str, digest: bytes) -> tuple[Principal, Stream] | None:
        cached = self._smtp.get(username)
        if cached is None or self._clock() - cached.checked_at >= CACHE_SECONDS:
            return None
        if not hmac.compare_digest(cached.digest, digest):
            return None
        return _smtp_principal(cached)

    def _verify_smtp(self, username: str, password: str, digest: bytes) -> tuple[Principal, Stream] | None:
        known = self._smtp.get(username)
        now = self._clock()
        with db.reader(self.engine) as conn:
            row = (
                conn.execute(
                    sa.select(smtp_credentials).where(
                        smtp_credentials.c.username == username,
                        smtp_credentials.c.revoked_at.is_(None),
                    )
                )
                .mappings()
                .first()
            )
        ok = False
        if (
            row is not None
            and known is not None
            and known.secret_hash == row["secret_hash"]
            and hmac.compare_digest(known.digest, digest)
        ):
            ok = True  # argon2 accepted exactly this secret for this row; only revocation was re-read
        else:
            # An unknown username pays the same argon2 work, so timing does not reveal which exist.
            stored = row["secret_hash"] if row is not None else self._dummy_hash()
            try:
                with self._argon_slots:
                    ok = self.hasher.verify(stored, password) and row is not None
            except (VerificationError, InvalidHashError):
                ok = False
        if not ok:
            if row is None:
                with self._lock:
                    self._smtp.pop(username, None)
            with self.engine.begin() as conn:
                audit.append(
                    conn,
                    action=AuditAction.SMTP_AUTH_FAILED,
                    actor="anonymous",
                    tenant_id=row["tenant_id"] if row else None,
                    target=row["id"] if row else None,
                )
            return None
        assert row is not None
        entry = _CachedCredential(row["tenant_id"], row["id"], row["stream"], row["secret_hash"], digest, now)
        with self._lock:
            self._smtp[username] = entry
        return _smtp_principal(entry)


def _smtp_principal(entry: _CachedCredential) -> tuple[Principal, Stream]:
    return (Principal(entry.tenant_id, entry.credential_id, frozenset({"send"})), Stream(entry.stream))


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
