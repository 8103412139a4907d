"""The tenant's own keys: the OpenPGP archive key and per-sender-domain DKIM keys.

Secret halves are sealed under the tenant key (the same envelope as message content), so
the database alone never yields a usable private key.  Loaded signers and certificates are
cached in process memory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.crypto import dkim, pgp, smime
from sealmail.errors import NotFound
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import tenant_identities, tenants
from sealmail.tenancy.keyring import Keyring

SIGNER_TTL = 60.0
# A sender's OpenPGP signing key (name: the address); "pgp" is the archive key.
SIGNING_KIND = "pgp-sign"
DKIM_ALGORITHMS: tuple[dkim.Algorithm, ...] = ("ed25519-sha256", "rsa-sha256")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SmimeIdentityInfo:
    """The tenant's S/MIME signing certificate, as shown (the key is never returned)."""

    subject: str
    issuer: str
    fingerprint_sha256: str
    emails: tuple[str, ...]
    not_after: datetime

    @classmethod
    def of(cls, identity: smime.TenantIdentity) -> SmimeIdentityInfo:
        info = identity.info
        return cls(info.subject, info.issuer, info.fingerprint_sha256, tuple(info.emails), info.not_after)


class Identities:
    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self.engine = engine
        self.keyring = keyring
        self._archive: dict[str, pgp.LoadedCert] = {}
        # Signers expire from the cache so keys created by another process are picked up.
        self._signers: dict[tuple[str, str], tuple[float, dkim.DkimSigner | None]] = {}
        self._lock = threading.Lock()
        self._pgp_signers: dict[tuple[str, str], pgp.SigningKey] = {}
        self._smime: dict[str, smime.TenantIdentity | None] = {}

    def _store(
        self,
        tenant_id: str,
        kind: str,
        name: str,
        algorithm: str,
        fingerprint: str,
        public: bytes,
        secret: bytes,
        actor: str,
    ) -> str:
        ident_id = new_id("tid")
        key_id, wrapped, sealed = self.keyring.seal(tenant_id, ident_id, secret)
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(tenant_identities).values(
                    id=ident_id,
                    tenant_id=tenant_id,
                    kind=kind,
                    name=name,
                    algorithm=algorithm[:32],  # a short label; library descriptions run longer
                    fingerprint=fingerprint,
                    public=public,
                    tenant_key_id=key_id,
                    wrapped_data_key=wrapped,
                    secret=sealed,
                    active=True,
                    created_at=_now(),
                )
            )
            audit.append(
                conn,
                action=AuditAction.TENANT_IDENTITY_CREATED,
                actor=actor,
                tenant_id=tenant_id,
                target=ident_id,
                details={"kind": kind, "name": name, "algorithm": algorithm},
            )
        return ident_id

    def _secret(self, row: Any) -> bytes:
        return self.keyring.open(
            row["tenant_id"], row["id"], row["tenant_key_id"], row["wrapped_data_key"], row["secret"]
        )

    def _active(self, tenant_id: str, kind: str, name: str | None = None) -> Any:
        """The tenant's newest active identity of a kind (and name, when given), or None."""
        where = [
            tenant_identities.c.tenant_id == tenant_id,
            tenant_identities.c.kind == kind,
            tenant_identities.c.active.is_(True),
        ]
        if name is not None:
            where.append(tenant_identities.c.name == name)
        with db.reader(self.engine) as conn:
            return (
                conn.execute(
                    sa.select(tenant_identities)
                    .where(*where)
                    .order_by(tenant_identities.c.created_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )

    # -- OpenPGP archive key -------------------------------------------------------------
    def archive_public(self, tenant_id: str) -> bytes:
        """The tenant's archive certificate (armored), created on first use."""
        row = self._active(tenant_id, "pgp")
        if row is not None:
            return bytes(row["public"])
        with db.reader(self.engine) as conn:
            name = conn.execute(sa.select(tenants.c.name).where(tenants.c.id == tenant_id)).scalar_one()
        secret, public = pgp.generate_tenant_key(f"{name} archive <archive@sealmail.invalid>")
        info = pgp.inspect_cert(public, _now())
        self._store(tenant_id, "pgp", "archive", info.algorithm, info.fingerprint, public, secret, "system")
        return public

    def cached_pgp_keys(
        self, tenant_id: str, sender: str | None
    ) -> tuple[pgp.LoadedCert, pgp.SigningKey | None] | None:
        """``pgp_keys`` when this process has both loaded already, else None; no I/O."""
        archive = self._archive.get(tenant_id)
        if archive is None:
            return None
        if sender is None:
            return archive, None
        signer = self._pgp_signers.get((tenant_id, sender.strip().lower()))
        return None if signer is None else (archive, signer)

    def pgp_keys(self, tenant_id: str, sender: str | None) -> tuple[pgp.LoadedCert, pgp.SigningKey | None]:
        """The archive certificate and, unless ``sender`` is None, that sender's signing key."""
        return self.archive_cert(tenant_id), None if sender is None else self.pgp_signer(tenant_id, sender)

    def archive_cert(self, tenant_id: str) -> pgp.LoadedCert:
        """The archive certificate, parsed once per process."""
        cached = self._archive.get(tenant_id)
        if cached is not None:
            return cached
        loaded = pgp.load_cert(self.archive_public(tenant_id))
        with self._lock:
            self._archive[tenant_id] = loaded
        return loaded

    def archive_secret(self, tenant_id: str) -> bytes:
        """The archive secret key (for the organisation's retention tooling; audited by callers)."""
        row = self._active(tenant_id, "pgp")
        if row is None:
            raise NotFound("this tenant has no archive key yet")
        return self._secret(row)

    def pgp_signer(self, tenant_id: str, sender: str) -> pgp.SigningKey:
        """The OpenPGP signing key of one sending address, created on first use (cached).

        Readers compare the signer's user id with the From address and flag a mismatch
        (the sender-spoofing check of RFC 9580 §5.2.3.28's Signer's User ID and of mail
        clients such as Thunderbird), so each sender signs with a key of its own address
        rather than with the tenant's archive key.
        """
        address = sender.strip().lower()
        cached = self._pgp_signers.get((tenant_id, address))
        if cached is not None:
            return cached
        row = self._active(tenant_id, SIGNING_KIND, address)
        if row is None:
            self.create_pgp_signing_key(tenant_id, address, "system")
            row = self._active(tenant_id, SIGNING_KIND, address)
        signer = pgp.load_signing_key(self._secret(row))
        with self._lock:
            self._pgp_signers[(tenant_id, address)] = signer
        return signer

    def create_pgp_signing_key(self, tenant_id: str, sender: str, actor: str) -> bytes:
        """A new signing key whose only user id is the sending address; returns the certificate."""
        address = sender.strip().lower()
        with db.reader(self.engine) as conn:
            name = conn.execute(sa.select(tenants.c.name).where(tenants.c.id == tenant_id)).scalar_one()
        secret, public = pgp.generate_tenant_key(f"{name} <{address}>")
        info = pgp.inspect_cert(public, _now())
        self._store(tenant_id, SIGNING_KIND, address, info.algorithm, info.fingerprint, public, secret, actor)
        with self._lock:
            self._pgp_signers.pop((tenant_id, address), None)
        return public

    def pgp_signing_public(self, tenant_id: str, sender: str) -> bytes | None:
        """The signing certificate of a sending address (armored), for recipients to verify with."""
        row = self._active(tenant_id, SIGNING_KIND, sender.strip().lower())
        return None if row is None else bytes(row["public"])

    # -- S/MIME signing identity --------------------------------------------------------------
    def set_smime_identity(
        self, tenant_id: str, cert_pem: bytes, key_pem: bytes, actor: str
    ) -> SmimeIdentityInfo:
        """Store the tenant's S/MIME certificate (+chain) and key; the key is sealed at rest."""
        identity = smime.load_tenant_identity(cert_pem, key_pem)  # checks the key matches
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(tenant_identities)
                .where(tenant_identities.c.tenant_id == tenant_id, tenant_identities.c.kind == "smime")
                .values(active=False)
            )
        key_der = identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._store(
            tenant_id,
            "smime",
            identity.info.subject[:255],
            identity.info.key_type,
            identity.info.fingerprint_sha256,
            cert_pem,
            key_der,
            actor,
        )
        with self._lock:
            self._smime.pop(tenant_id, None)
        return SmimeIdentityInfo.of(identity)

    def smime_identity_info(self, tenant_id: str) -> SmimeIdentityInfo | None:
        identity = self.smime_identity(tenant_id)
        return None if identity is None else SmimeIdentityInfo.of(identity)

    def smime_identity(self, tenant_id: str) -> smime.TenantIdentity | None:
        if tenant_id in self._smime:
            return self._smime[tenant_id]
        row = self._active(tenant_id, "smime")
        identity = smime.load_tenant_identity(row["public"], self._secret(row)) if row is not None else None
        with self._lock:
            self._smime[tenant_id] = identity
        return identity

    # -- DKIM ------------------------------------------------------------------------------
    def create_dkim_keys(self, tenant_id: str, domain: str, actor: str) -> list[dkim.DkimKey]:
        """Dual keys (Ed25519 and RSA-2048) for a sending domain; replaces older ones."""
        stamp = _now().strftime("%Y%m")
        keys = []
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(tenant_identities)
                .where(
                    tenant_identities.c.tenant_id == tenant_id,
                    tenant_identities.c.kind == "dkim",
                    tenant_identities.c.name.endswith(f"._domainkey.{domain}", autoescape=True),
                )
                .values(active=False)
            )
        for algorithm in DKIM_ALGORITHMS:
            short = "ed" if algorithm.startswith("ed") else "rsa"
            key = dkim.generate_key(domain, f"sm{stamp}{short}", algorithm)
            self._store(
                tenant_id,
                "dkim",
                key.record_name,
                algorithm,
                key.selector,
                key.public_record().encode(),
                key.private_key_pem,
                actor,
            )
            keys.append(key)
        with self._lock:
            self._signers.pop((tenant_id, keys[0].domain), None)
        return keys

    def dkim_keys(self, tenant_id: str, domain: str) -> list[dkim.DkimKey]:
        with db.reader(self.engine) as conn:
            rows = (
                conn.execute(
                    sa.select(tenant_identities)
                    .where(
                        tenant_identities.c.tenant_id == tenant_id,
                        tenant_identities.c.kind == "dkim",
                        tenant_identities.c.active.is_(True),
                        tenant_identities.c.name.endswith(f"._domainkey.{domain}", autoescape=True),
                    )
                    .order_by(tenant_identities.c.algorithm)
                )
                .mappings()
                .all()
            )
        keys = []
        for row in rows:
            selector = row["name"].split("._domainkey.", 1)[0]
            keys.append(dkim.DkimKey(domain, selector, row["algorithm"], self._secret(row)))
        return keys

    def cached_dkim_signer(self, tenant_id: str, domain: str) -> dkim.DkimSigner | None:
        """The signer when a fresh one is cached, else None ("ask ``dkim_signer``"); no I/O."""
        cached = self._signers.get((tenant_id, domain.lower()))
        if cached is not None and time.monotonic() - cached[0] < SIGNER_TTL:
            return cached[1]
        return None

    def dkim_signer(self, tenant_id: str, domain: str) -> dkim.DkimSigner | None:
        """The signer for a sender domain, or None when the domain has no keys."""
        key = (tenant_id, domain.lower())
        cached = self._signers.get(key)
        if cached is not None and time.monotonic() - cached[0] < SIGNER_TTL:
            return cached[1]
        keys = self.dkim_keys(tenant_id, domain.lower())
        if cached is not None and cached[1] is not None and tuple(keys) == cached[1].keys:
            # Same keys as before: keep the loaded signer (parsing and checking an RSA
            # private key costs tens of milliseconds, on the delivery path).
            signer: dkim.DkimSigner | None = cached[1]
        else:
            signer = dkim.DkimSigner(keys) if keys else None
        with self._lock:
            self._signers[key] = (time.monotonic(), signer)
        return signer
