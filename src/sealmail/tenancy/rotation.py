"""Tenant-key rotation across every table that holds content sealed by the keyring.

Content is sealed twice (``Keyring.seal``): a fresh data key seals the bytes, the tenant
key wraps the data key.  Rotating a tenant key therefore rewraps data keys only — the
sealed bytes never move.  Which columns hold a wrapped data key is not the keyring's to
know (the tables belong to the features above it), so the composition root hands the
list in as ``SealedColumns``; ``tests/unit/tenancy/test_sealed_columns.py`` fails when a
table gains a key column the list does not name.

An old key is retired (its row deleted, so nothing can unwrap under it any more) only
once no listed column names it.  Running processes cache the active key id for
``ACTIVE_KEY_TTL`` seconds, so a process may still seal under the old key just after
the rotation; ``retire`` sweeps those stragglers first, and the CLI waits out the cache
before it calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from sealmail.crypto import vault
from sealmail.store.tables import tenant_keys
from sealmail.tenancy.keyring import Keyring


@dataclass(frozen=True, slots=True)
class SealedColumns:
    """One wrapped data key per row: the AAD owner is ``row[owner] + suffix``."""

    table: sa.Table
    owner: str
    key_id: str
    wrapped: str
    suffix: str = ""

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.key_id}"


@dataclass(frozen=True, slots=True)
class Rotation:
    key_id: str
    rewrapped: dict[str, int]  # per "table.column": data keys moved to the new key

    @property
    def total(self) -> int:
        return sum(self.rewrapped.values())


@dataclass(frozen=True, slots=True)
class Retirement:
    retired: list[str]  # tenant key ids deleted
    kept: list[str]  # inactive key ids still named by some row (not deleted)
    rewrapped: int  # stragglers sealed under an old key after the rotation


Progress = Callable[[int], None]


class KeyRotation:
    """Rewraps data keys under a tenant's newest key and retires keys no row needs."""

    def __init__(self, keyring: Keyring, sealed: Sequence[SealedColumns]) -> None:
        self.keyring = keyring
        self.sealed = tuple(sealed)

    def rotate(self, tenant_id: str, progress: Progress | None = None) -> Rotation:
        """A new active tenant key; every listed data key of the tenant rewrapped under it."""
        with self.keyring.engine.begin() as conn:
            new_key_id = self.keyring.create_tenant_key(conn, tenant_id)
        counts = {spec.name: self._rewrap(spec, tenant_id, new_key_id, progress) for spec in self.sealed}
        return Rotation(new_key_id, counts)

    def retire(self, tenant_id: str) -> Retirement:
        """Rewrap stragglers under the active key, then delete every unreferenced inactive key."""
        active = self.keyring.active_key_id(tenant_id, fresh=True)
        stragglers = sum(self._rewrap(spec, tenant_id, active, None) for spec in self.sealed)
        retired: list[str] = []
        kept: list[str] = []
        with self.keyring.engine.begin() as conn:
            inactive = conn.execute(
                sa.select(tenant_keys.c.id).where(
                    tenant_keys.c.tenant_id == tenant_id, tenant_keys.c.active.is_(False)
                )
            ).scalars()
            for key_id in list(inactive):
                if self._referenced(conn, tenant_id, key_id):
                    kept.append(key_id)
                    continue
                conn.execute(sa.delete(tenant_keys).where(tenant_keys.c.id == key_id))
                retired.append(key_id)
        self.keyring.forget(retired)
        return Retirement(retired, kept, stragglers)

    def _referenced(self, conn: sa.Connection, tenant_id: str, key_id: str) -> bool:
        for spec in self.sealed:
            t = spec.table
            hit = conn.execute(
                sa.select(sa.literal(1))
                .where(t.c.tenant_id == tenant_id, t.c[spec.key_id] == key_id)
                .limit(1)
            ).first()
            if hit is not None:
                return True
        return False

    def _rewrap(self, spec: SealedColumns, tenant_id: str, new_key_id: str, progress: Progress | None) -> int:
        t = spec.table
        owner, key_col, wrapped_col = t.c[spec.owner], t.c[spec.key_id], t.c[spec.wrapped]
        new_key = self.keyring.tenant_key(tenant_id, new_key_id)
        done, last = 0, ""
        while True:
            with self.keyring.engine.begin() as conn:
                batch = conn.execute(
                    sa.select(owner.label("owner"), key_col.label("key_id"), wrapped_col.label("wrapped"))
                    .where(
                        t.c.tenant_id == tenant_id,
                        owner > last,
                        wrapped_col.is_not(None),
                        key_col.is_not(None),
                    )
                    .order_by(owner)
                    .limit(500)
                ).all()
                if not batch:
                    return done
                for row in batch:
                    last = row.owner
                    if row.key_id == new_key_id:
                        continue
                    aad = vault.data_key_aad(tenant_id, row.owner + spec.suffix)
                    old_key = self.keyring.tenant_key(tenant_id, row.key_id)
                    data_key = vault.open_sealed(old_key, row.wrapped, aad)
                    conn.execute(
                        sa.update(t)
                        .where(t.c.tenant_id == tenant_id, owner == row.owner, key_col == row.key_id)
                        .values({key_col: new_key_id, wrapped_col: vault.seal(new_key, data_key, aad)})
                    )
                    done += 1
                    if progress:
                        progress(1)


__all__ = ["KeyRotation", "Retirement", "Rotation", "SealedColumns"]
