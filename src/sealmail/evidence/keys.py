"""Evidence signing keys: one Ed25519 key per tenant, and the installation's anchor key.

A tenant's key sits in ``tenant_identities`` (kind ``evidence``) with its secret sealed
under the tenant key, the same envelope as the tenant's archive and DKIM keys: the
database alone never yields a key that could forge a proof.  The installation key signs
audit-chain anchors; it is derived from a site secret (wrapped by the master key), so it
is stable across processes without another table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.evidence.signed import key_fingerprint, raw_public
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import tenant_identities
from sealmail.tenancy.keyring import Keyring

KIND = "evidence"
# HKDF purpose of the installation key's seed (``SiteSecrets.key``).
ANCHOR_PURPOSE = "evidence-anchor-ed25519"


class EvidenceKeys:
    def __init__(self, engine: Engine, keyring: Keyring, site_key: Callable[[str], bytes]) -> None:
        self.engine = engine
        self.keyring = keyring
        self._site_key = site_key
        self._tenant: dict[str, Ed25519PrivateKey] = {}
        self._lock = threading.Lock()

    def installation(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self._site_key(ANCHOR_PURPOSE))

    def tenant(self, tenant_id: str) -> Ed25519PrivateKey:
        """The tenant's evidence key, created (and audited) on first use."""
        cached = self._tenant.get(tenant_id)
        if cached is not None:
            return cached
        row = self._active(tenant_id)
        if row is None:
            self._create(tenant_id)
            row = self._active(tenant_id)
            assert row is not None
        secret = self.keyring.open(tenant_id, row.id, row.tenant_key_id, row.wrapped_data_key, row.secret)
        key = Ed25519PrivateKey.from_private_bytes(secret)
        with self._lock:
            self._tenant[tenant_id] = key
        return key

    def _active(self, tenant_id: str) -> sa.Row[tuple[object, ...]] | None:
        with db.reader(self.engine) as conn:
            return conn.execute(
                sa.select(tenant_identities)
                .where(
                    tenant_identities.c.tenant_id == tenant_id,
                    tenant_identities.c.kind == KIND,
                    tenant_identities.c.active.is_(True),
                )
                .order_by(tenant_identities.c.created_at.desc())
                .limit(1)
            ).first()

    def _create(self, tenant_id: str) -> None:
        key = Ed25519PrivateKey.generate()
        secret = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        ident_id = new_id("tid")
        key_id, wrapped, sealed = self.keyring.seal(tenant_id, ident_id, secret)
        fingerprint = key_fingerprint(key.public_key())
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(tenant_identities).values(
                    id=ident_id,
                    tenant_id=tenant_id,
                    kind=KIND,
                    name="evidence",
                    algorithm="ed25519",
                    fingerprint=fingerprint,
                    public=raw_public(key.public_key()),
                    tenant_key_id=key_id,
                    wrapped_data_key=wrapped,
                    secret=sealed,
                    active=True,
                    created_at=datetime.now(UTC),
                )
            )
            audit.append(
                conn,
                action=AuditAction.EVIDENCE_KEY_CREATED,
                actor="system",
                tenant_id=tenant_id,
                target=ident_id,
                details={"fingerprint": fingerprint},
            )
