"""Tenant keys and message data keys: the glue between the vault and the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection, Engine

from sealmail.crypto import vault
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import tenant_keys

# How long a process trusts its cached active key id: a rotation run elsewhere is seen
# within this, and ``KeyRotation.retire`` is called only after it (``keys rotate``).
ACTIVE_KEY_TTL = 30.0


class Keyring:
    """Encrypts and decrypts tenant content; unwrapped tenant keys are cached in memory.

    The cache holds tenant keys only (never data keys), so one unwrap through the
    master key serves every message of a tenant.
    """

    def __init__(self, engine: Engine, wrapper: vault.KeyWrapper) -> None:
        self.engine = engine
        self.wrapper = wrapper
        self._cache: dict[str, bytes] = {}
        # Each cached tenant key's AES-GCM context (``vault.sealer``), for wrapping data keys.
        self._sealers: dict[str, AESGCM] = {}
        self._active: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    # -- tenant keys -------------------------------------------------------------------------
    def create_tenant_key(self, conn: Connection, tenant_id: str) -> str:
        key_id = new_id("tk")
        key = vault.new_key()
        master_id, wrapped = self.wrapper.wrap(key, vault.tenant_key_aad(tenant_id, key_id))
        conn.execute(sa.update(tenant_keys).where(tenant_keys.c.tenant_id == tenant_id).values(active=False))
        conn.execute(
            sa.insert(tenant_keys).values(
                id=key_id,
                tenant_id=tenant_id,
                master_key_id=master_id,
                wrapped_key=wrapped,
                active=True,
                created_at=datetime.now(UTC),
            )
        )
        with self._lock:
            self._cache[key_id] = key
            self._active.pop(tenant_id, None)
        return key_id

    def tenant_key(self, tenant_id: str, key_id: str) -> bytes:
        cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(tenant_keys.c.master_key_id, tenant_keys.c.wrapped_key).where(
                    tenant_keys.c.id == key_id, tenant_keys.c.tenant_id == tenant_id
                )
            ).one()
        key = self.wrapper.unwrap(row.master_key_id, row.wrapped_key, vault.tenant_key_aad(tenant_id, key_id))
        with self._lock:
            self._cache[key_id] = key
        return key

    def active_key_id(self, tenant_id: str, *, fresh: bool = False) -> str:
        hit = self._active.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        with db.reader(self.engine) as conn:
            key_id: str = conn.execute(
                sa.select(tenant_keys.c.id)
                .where(tenant_keys.c.tenant_id == tenant_id, tenant_keys.c.active.is_(True))
                .order_by(tenant_keys.c.created_at.desc())
                .limit(1)
            ).scalar_one()
        with self._lock:
            self._active[tenant_id] = (now + ACTIVE_KEY_TTL, key_id)
        return key_id

    def forget(self, key_ids: Iterable[str]) -> None:
        """Drop retired tenant keys from the cache: nothing may unwrap under them again."""
        with self._lock:
            for key_id in key_ids:
                self._cache.pop(key_id, None)
                self._sealers.pop(key_id, None)

    # -- content -----------------------------------------------------------------------------
    def seal(self, tenant_id: str, owner_id: str, plaintext: bytes) -> tuple[str, bytes, bytes]:
        """Encrypt under a fresh data key; returns (tenant key id, wrapped data key, blob)."""
        key_id = self.active_key_id(tenant_id)
        wrapper = self._sealers.get(key_id)
        if wrapper is None:
            wrapper = vault.sealer(self.tenant_key(tenant_id, key_id))
            with self._lock:
                if key_id in self._cache:  # not forgotten meanwhile
                    self._sealers[key_id] = wrapper
        data_key = vault.new_key()
        blob = vault.seal(data_key, plaintext, vault.content_aad(tenant_id, owner_id))
        wrapped = vault.seal_with(wrapper, data_key, vault.data_key_aad(tenant_id, owner_id))
        return key_id, wrapped, blob

    def open(self, tenant_id: str, owner_id: str, key_id: str, wrapped: bytes, blob: bytes) -> bytes:
        tenant_key = self.tenant_key(tenant_id, key_id)
        data_key = vault.open_sealed(tenant_key, wrapped, vault.data_key_aad(tenant_id, owner_id))
        return vault.open_sealed(data_key, blob, vault.content_aad(tenant_id, owner_id))

    # -- rotation ----------------------------------------------------------------------------
    def rewrap_tenant_keys(self, progress: Callable[[int], None] | None = None) -> int:
        """Rewrap every tenant key under the wrapper's active master key.

        Row by row in short transactions, so API and workers keep running: a process that
        still holds the old master key id finds it in the key ring until it is retired.
        """
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(tenant_keys.c.id, tenant_keys.c.tenant_id, tenant_keys.c.master_key_id)
            ).all()
        done = 0
        for row in rows:
            if row.master_key_id != self.wrapper.active_key_id:
                with self.engine.begin() as conn:
                    current = conn.execute(
                        sa.select(tenant_keys.c.master_key_id, tenant_keys.c.wrapped_key).where(
                            tenant_keys.c.id == row.id
                        )
                    ).one()
                    aad = vault.tenant_key_aad(row.tenant_id, row.id)
                    key = self.wrapper.unwrap(current.master_key_id, current.wrapped_key, aad)
                    master_id, wrapped = self.wrapper.wrap(key, aad)
                    conn.execute(
                        sa.update(tenant_keys)
                        .where(tenant_keys.c.id == row.id)
                        .values(master_key_id=master_id, wrapped_key=wrapped)
                    )
            done += 1
            if progress:
                progress(1)
        return done
