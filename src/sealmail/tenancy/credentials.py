"""API-key and SMTP-credential authentication for ``Tenancy`` (a mixin it inherits).

Split out of ``tenancy.service`` to keep modules small; the names stay importable there.
Secrets are argon2 hashes; a verified credential is cached for ``CACHE_SECONDS`` under its
SHA-256 digest so a request does not pay for argon2 each time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.tls_policy import Stream
from sealmail.errors import AuthenticationRequired, NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import api_keys, smtp_credentials
from sealmail.store.ttl_cache import TtlCache
from sealmail.tenancy.values import ApiKeyInfo, SmtpCredentialInfo, Tenant

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


def _now() -> datetime:
    return datetime.now(UTC)


class Credentials:
    """Create, list, revoke and authenticate API keys and SMTP credentials."""

    engine: Engine
    hasher: PasswordHasher
    _clock: Callable[[], float]
    _keys: dict[str, _CachedKey]
    _lock: threading.Lock
    _key_locks: dict[str, tuple[threading.Lock, list[int]]]
    _argon_slots: threading.BoundedSemaphore
    _dummy: str | None
    _smtp: dict[str, _CachedCredential]
    _smtp_live: TtlCache[str, bool]

    def get_tenant(self, tenant_id: str) -> Tenant:
        raise NotImplementedError  # ``Tenancy`` provides it

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
                    created_by=actor[:80],
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

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyInfo]:
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
            )
            return [
                ApiKeyInfo(r.id, r.name, tuple(r.scopes), r.created_at, r.revoked_at, r.last_used_at)
                for r in rows
            ]

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
                    created_by=actor[:80],
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

    def list_smtp_credentials(self, tenant_id: str) -> list[SmtpCredentialInfo]:
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
            )
            return [SmtpCredentialInfo(*r) for r in rows]

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
        self.forget((), (cred_id,))

    def forget(self, key_ids: Collection[str], credential_ids: Collection[str]) -> None:
        """Drop this process's cached verifications of keys and credentials just revoked, by
        this service or in another's transaction (a person disabled in the console): they are
        refused here at once; other processes within ``CACHE_SECONDS``."""
        with self._lock:
            if key_ids:
                self._keys = {k: c for k, c in self._keys.items() if c.key_id not in key_ids}
            if credential_ids:
                self._smtp = {u: c for u, c in self._smtp.items() if c.credential_id not in credential_ids}
        for cred_id in credential_ids:
            self._smtp_live.drop(cred_id)

    def cached_smtp_credential_live(self, credential_id: str) -> bool | None:
        """``smtp_credential_live`` from a fresh cache entry, without I/O; None: ask it."""
        return self._smtp_live.get(credential_id)

    def smtp_credential_live(self, credential_id: str) -> bool:
        """Whether a credential is still unrevoked, re-read at most ``CACHE_SECONDS`` apart:
        a connection that authenticated before a revocation (in any process) asks at each
        ``MAIL`` and stops within that bound instead of sending until it hangs up."""
        live = self._smtp_live.get(credential_id)
        if live is not None:
            return live
        stamp = self._smtp_live.stamp()
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(smtp_credentials.c.revoked_at).where(smtp_credentials.c.id == credential_id)
            ).first()
        live = row is not None and row.revoked_at is None
        self._smtp_live.put(credential_id, live, stamp)
        return live

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
