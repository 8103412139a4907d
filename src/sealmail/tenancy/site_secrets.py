"""Installation-wide secrets: HMAC keys for signed return paths and recipient links.

Tokens that leave the system (a VERP return path, an unsubscribe or tracking link) must
verify on any process of the deployment and survive restarts, so their key cannot live in
process memory.  One random root per name is stored wrapped by the master key; purposes
get their own key from it through HKDF, so a VERP key can never verify a link token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from sealmail.crypto import vault
from sealmail.store import db
from sealmail.store.tables import site_secrets

ROOT = "root"


def _aad(name: str) -> bytes:
    return f"sealmail/site-secret/{name}".encode()


class SiteSecrets:
    def __init__(self, engine: Engine, wrapper: vault.KeyWrapper) -> None:
        self.engine = engine
        self.wrapper = wrapper
        self._roots: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def key(self, purpose: str, name: str = ROOT) -> bytes:
        """A 32-byte key for one purpose (e.g. ``"verp"``, ``"links"``), stable across processes."""
        root = self._root(name)
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(root)

    def _root(self, name: str) -> bytes:
        with self._lock:
            cached = self._roots.get(name)
        if cached is not None:
            return cached
        secret = self._load(name)
        if secret is None:
            secret = self._create(name)
        with self._lock:
            self._roots[name] = secret
        return secret

    def _load(self, name: str) -> bytes | None:
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(site_secrets.c.master_key_id, site_secrets.c.wrapped_secret).where(
                    site_secrets.c.name == name
                )
            ).first()
        if row is None:
            return None
        return self.wrapper.unwrap(row.master_key_id, row.wrapped_secret, _aad(name))

    def _create(self, name: str) -> bytes:
        secret = vault.new_key()
        master_id, wrapped = self.wrapper.wrap(secret, _aad(name))
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(site_secrets).values(
                        name=name,
                        master_key_id=master_id,
                        wrapped_secret=wrapped,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            # Another process created it first: theirs is the one every token is made with.
            loaded = self._load(name)
            if loaded is None:  # pragma: no cover — the row that collided cannot vanish
                raise
            return loaded
        return secret

    def rewrap(self, progress: Callable[[int], None] | None = None) -> int:
        """Rewrap every site secret under the active master key (part of master key rotation)."""
        with db.reader(self.engine) as conn:
            names = list(conn.execute(sa.select(site_secrets.c.name)).scalars())
        for name in names:
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(site_secrets.c.master_key_id, site_secrets.c.wrapped_secret).where(
                        site_secrets.c.name == name
                    )
                ).one()
                if row.master_key_id != self.wrapper.active_key_id:
                    secret = self.wrapper.unwrap(row.master_key_id, row.wrapped_secret, _aad(name))
                    master_id, wrapped = self.wrapper.wrap(secret, _aad(name))
                    conn.execute(
                        sa.update(site_secrets)
                        .where(site_secrets.c.name == name)
                        .values(master_key_id=master_id, wrapped_secret=wrapped)
                    )
            if progress:
                progress(1)
        return len(names)
