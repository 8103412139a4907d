"""The per-tenant key directory: recipient OpenPGP certificates and S/MIME certificates.

Uploaded through the API or CLI, or discovered (WKD, an optional VKS keyserver — see
``secureline.discovery``) with
positive and negative caching.  Public key material is not secret and is stored in the
clear; what SecureLine needs from it are *facts* (``KeyFact``): which certificate, where
it came from, and whether it is usable for this address right now, with the reason if not.

Size: the stored certificates, the facts read from them and the in-process cache of those
facts (with its invalidation on every write) must change together.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.crypto import cms, smime
from sealmail.crypto import pgp as openpgp
from sealmail.domain.secureline import KeyFact
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.secureline.key_cache import DiscoveryEntry, DiscoveryStatus
from sealmail.secureline.key_reads import KeyReads
from sealmail.store import db
from sealmail.store.address_sets import AddressSet
from sealmail.store.tables import key_discovery, keydir_generation, recipient_keys

log = structlog.get_logger("sealmail.keys")

# Which addresses of a tenant have any key, remembered this long: most delivery groups go to
# recipients without keys, and asking the database per group cost ~10 % of the worker.  Only
# "no key here" is answered from it: an address in the set is always read fresh, so a deleted
# key is never used from memory; a key stored by another process (the API's upload next to
# ``--role worker``) is seen within this bound, one stored in this process at once.
KEYED_ADDRESSES_SECONDS = 2.0
# Keyed addresses whose rows are kept in memory (a full cache is emptied).  Rows are kept only
# while the change counter the worker read at its latest claim (``observe_generation``) is the
# one they were read under: every change to ``recipient_keys``, by any process, bumps it (a
# trigger, migration 0027), so a key deleted before a message was claimed is never used for it.
ROWS_KEPT = 50_000
# Parsed certificates kept per process (a full cache is emptied): parsing and validating an
# OpenPGP certificate costs ~0.3 ms, far more than reading its row.
PARSED_KEPT = 10_000

# The keyed recipients' rows, built once: constructing the SELECT per delivery group cost
# about as much as running it.
_FACTS = (
    sa.select(recipient_keys)
    .where(
        recipient_keys.c.tenant_id == sa.bindparam("tenant_id"),
        recipient_keys.c.address.in_(sa.bindparam("addresses", expanding=True)),
    )
    .order_by(recipient_keys.c.updated_at.desc())
)
_GENERATION = sa.select(keydir_generation.c.generation).where(keydir_generation.c.id == 1)


def read_generation(conn: Connection) -> int | None:
    """The key directory's change counter (None when its row is missing: nothing is kept)."""
    value = conn.execute(_GENERATION).scalar()
    return None if value is None else int(value)


def _now() -> datetime:
    return datetime.now(UTC)


def detect_kind(data: bytes) -> str:
    """``pgp`` or ``smime`` from the bytes themselves (armored or binary)."""
    head = data.lstrip()[:40]
    if head.startswith(b"-----BEGIN PGP"):
        return "pgp"
    if head.startswith(b"-----BEGIN CERTIFICATE") or head.startswith(b"-----BEGIN PKCS7"):
        return "smime"
    if data[:1] == b"\x30":  # DER SEQUENCE
        return "smime"
    if data and data[0] & 0x80:  # an OpenPGP packet header (RFC 9580 §4.2)
        return "pgp"
    raise ValidationFailed(
        [{"field": "key", "message": "neither an OpenPGP certificate nor an X.509 certificate"}]
    )


@dataclass(frozen=True, slots=True)
class RecipientKey:
    """A stored recipient key or certificate (one per address it names), without its bytes."""

    id: str
    kind: str  # pgp | smime
    address: str
    fingerprint: str
    source: str
    trusted: bool
    expires_at: datetime | None
    # Read back from the table; an upload's result leaves them None.
    created_at: datetime | None = None
    updated_at: datetime | None = None
    capabilities: str | None = None

    @classmethod
    def of(cls, row: Any) -> RecipientKey:
        return cls(
            row["id"], row["kind"], row["address"], row["fingerprint"], row["source"], row["trusted"],
            row["expires_at"], row["created_at"], row["updated_at"], row["capabilities"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A stored key with its bytes (armored/binary OpenPGP, PEM/DER X.509)."""

    key: RecipientKey
    data: bytes


@dataclass(frozen=True, slots=True)
class RecipientKeys:
    """Facts and the loaded material SecureLine encrypts with, for one address."""

    pgp: tuple[KeyFact, ...]
    smime: tuple[KeyFact, ...]
    pgp_certs: dict[str, openpgp.LoadedCert]
    smime_certs: dict[str, Any]  # fingerprint -> x509.Certificate
    # fingerprint -> what the recipient's signed mail advertised (RFC 8551 §2.5.2)
    smime_capabilities: dict[str, cms.Capabilities] = field(default_factory=dict)


class KeyDirectory:
    def __init__(
        self,
        engine: Engine,
        trust: Callable[[], smime.TrustStore],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        # Loading the system CA bundle takes a noticeable moment; do it on first S/MIME use.
        self._trust_factory = trust
        self._trust: smime.TrustStore | None = None
        # (fingerprint, stored bytes) -> parsed: an OpenPGP fingerprint names the primary key
        # only, so a re-uploaded certificate (new expiry, a revoked or added subkey) keeps it;
        # the bytes as stored make the new version parse again instead of using the old one.
        self._pgp_cache: dict[tuple[str, bytes], openpgp.LoadedCert] = {}
        self._smime_cache: dict[str, smime.SmimeCertInfo] = {}
        self._lock = threading.Lock()
        # tenant -> (addresses with any key,) — (None,) when there are too many to keep.
        # Which addresses have any key: a group of none of them needs no read.
        self._keyed = AddressSet(engine, recipient_keys, KEYED_ADDRESSES_SECONDS, clock)
        self._reads: KeyReads[RecipientKeys] = KeyReads(self.facts)
        # (tenant, address) -> its rows, read under ``self._generation`` (see ROWS_KEPT).
        self._rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._generation: int | None = None

    @property
    def trust(self) -> smime.TrustStore:
        if self._trust is None:
            self._trust = self._trust_factory()
        return self._trust

    # -- management ----------------------------------------------------------------------
    def upload(
        self,
        tenant_id: str,
        data: bytes,
        actor: str,
        *,
        trusted: bool = False,
        source: str = "uploaded",
        only_address: str | None = None,
        capabilities: cms.Capabilities | None = None,
    ) -> list[RecipientKey]:
        """Store a certificate once per address it names; returns the stored rows.

        ``capabilities`` (S/MIME harvest) records what the correspondent's signed mail
        advertised; None leaves what was learned before in place.

        ``only_address`` (discovery) stores it for the looked-up address only, and only
        if the certificate names it: a WKD server must not plant keys for other people.
        """
        kind = detect_kind(data)
        now = _now()
        fingerprint, emails, expires = _inspect(kind, data, now, source)
        addresses = _addresses_to_store(emails, only_address)
        values: dict[str, Any] = {
            "source": source,
            "trusted": trusted,
            "data": data,
            "expires_at": expires,
            "updated_at": now,
        }
        if capabilities is not None:
            values["capabilities"] = capabilities.to_text()
        rows = []
        with self.engine.begin() as conn:
            for address in addresses:
                key_id = _store_key(conn, tenant_id, kind, address, fingerprint, values)
                rows.append(RecipientKey(key_id, kind, address, fingerprint, source, trusted, expires))
            if source == "uploaded":
                audit.append(
                    conn,
                    action=AuditAction.RECIPIENT_KEY_ADDED,
                    actor=actor,
                    tenant_id=tenant_id,
                    target=fingerprint,
                    details={"kind": kind, "addresses": len(rows)},
                )
        self._keyed.drop(tenant_id)
        self._forget_rows()
        return rows

    def list(self, tenant_id: str, address: str | None = None, kind: str | None = None) -> list[RecipientKey]:
        q = sa.select(*[c for c in recipient_keys.c if c.name != "data"]).where(
            recipient_keys.c.tenant_id == tenant_id
        )
        if address:
            q = q.where(recipient_keys.c.address == address.strip().lower())
        if kind:
            q = q.where(recipient_keys.c.kind == kind)
        with db.reader(self.engine) as conn:
            return [
                RecipientKey.of(r)
                for r in conn.execute(q.order_by(recipient_keys.c.address, recipient_keys.c.id)).mappings()
            ]

    def get(self, tenant_id: str, key_id: str) -> KeyMaterial:
        with db.reader(self.engine) as conn:
            row = (
                conn.execute(
                    sa.select(recipient_keys).where(
                        recipient_keys.c.id == key_id, recipient_keys.c.tenant_id == tenant_id
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"key {key_id} not found")
        return KeyMaterial(RecipientKey.of(row), row["data"])

    def delete(self, tenant_id: str, key_id: str, actor: str) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(recipient_keys.c.fingerprint).where(
                    recipient_keys.c.id == key_id, recipient_keys.c.tenant_id == tenant_id
                )
            ).first()
            if row is None:
                raise NotFound(f"key {key_id} not found")
            conn.execute(sa.delete(recipient_keys).where(recipient_keys.c.id == key_id))
            audit.append(
                conn,
                action=AuditAction.RECIPIENT_KEY_DELETED,
                actor=actor,
                tenant_id=tenant_id,
                target=row.fingerprint,
            )
        self._keyed.drop(tenant_id)
        self._forget_rows()

    # -- facts for SecureLine ------------------------------------------------------------------
    def cached_facts(self, tenant_id: str, addresses: Sequence[str]) -> dict[str, RecipientKeys] | None:
        """``facts`` when the cached keyed set shows none of ``addresses`` has a key, else None.

        No I/O, so the event loop may ask (no thread hop per delivery group on the TLS path).
        """
        wanted = {a.strip().lower() for a in addresses}
        if not self._keyed.cached_none_of(tenant_id, wanted):
            return None
        return {a: RecipientKeys((), (), {}, {}) for a in sorted(wanted)}

    def observe_generation(self, generation: int | None) -> None:
        """The change counter read in the worker's latest claim; a new value empties the rows."""
        with self._lock:
            if generation != self._generation or generation is None:
                self._rows.clear()
            self._generation = generation

    def _forget_rows(self) -> None:
        # A change made here is not seen by the counter until the next claim reads it.
        with self._lock:
            self._rows.clear()

    def kept_facts(
        self, tenant_id: str, addresses: Sequence[str], now: datetime
    ) -> dict[str, RecipientKeys] | None:
        """``facts`` from the rows kept since the latest claim, or None when one is not kept.

        No I/O (certificates were parsed when the rows were read), so the event loop asks it
        before handing a read to a thread.
        """
        wanted = sorted({a.strip().lower() for a in addresses})
        if self._generation is None:
            return None
        kept = [self._rows.get((tenant_id, a)) for a in wanted]
        if any(rows is None for rows in kept):
            return None
        return self._from_rows(dict(zip(wanted, kept, strict=True)), now)

    async def read_facts(
        self, tenant_id: str, addresses: Sequence[str], now: datetime
    ) -> dict[str, RecipientKeys]:
        """``facts`` from a thread, one read for the groups asking together (``KeyReads``)."""
        return await self._reads.facts(tenant_id, addresses, now)

    def facts(self, tenant_id: str, addresses: Sequence[str], now: datetime) -> dict[str, RecipientKeys]:
        wanted = sorted({a.strip().lower() for a in addresses})
        out: dict[str, RecipientKeys] = {a: RecipientKeys((), (), {}, {}) for a in wanted}
        if not wanted or self._keyed.none_of(tenant_id, wanted):
            return out
        with db.reader(self.engine) as conn:
            # Read before the rows: a change between the two only makes the label older.
            generation = read_generation(conn) if self._generation is not None else None
            rows = conn.execute(_FACTS, {"tenant_id": tenant_id, "addresses": wanted}).mappings().all()
        by_address: dict[str, list[Any]] = {a: [] for a in wanted}
        for row in rows:
            by_address.setdefault(row["address"], []).append(row)
        if generation is not None:
            with self._lock:
                if generation == self._generation:
                    if len(self._rows) + len(by_address) > ROWS_KEPT:
                        self._rows.clear()
                    for address, found in by_address.items():
                        self._rows[(tenant_id, address)] = tuple(found)
        out.update(self._from_rows(by_address, now))
        return out

    def _from_rows(self, by_address: dict[str, Any], now: datetime) -> dict[str, RecipientKeys]:
        out: dict[str, RecipientKeys] = {}
        for address, found in by_address.items():
            pgp_facts: list[KeyFact] = []
            smime_facts: list[KeyFact] = []
            pgp_certs: dict[str, openpgp.LoadedCert] = {}
            smime_certs: dict[str, Any] = {}
            capabilities: dict[str, cms.Capabilities] = {}
            for row in found:
                if row["kind"] == "pgp":
                    fact, loaded = self._pgp_fact(row, address, now)
                    pgp_facts.append(fact)
                    if loaded is not None and fact.usable:
                        pgp_certs[fact.fingerprint] = loaded
                else:
                    fact, cert = self._smime_fact(row, address, now)
                    smime_facts.append(fact)
                    if cert is not None and fact.usable:
                        smime_certs[fact.fingerprint] = cert
                        capabilities[fact.fingerprint] = cms.Capabilities.from_text(row["capabilities"])
            # Usable keys first, newest first within each group.
            pgp_facts.sort(key=lambda f: not f.usable)
            smime_facts.sort(key=lambda f: not f.usable)
            out[address] = RecipientKeys(
                tuple(pgp_facts), tuple(smime_facts), pgp_certs, smime_certs, capabilities
            )
        return out

    def _pgp_fact(self, row: Any, address: str, now: datetime) -> tuple[KeyFact, openpgp.LoadedCert | None]:
        fp = row["fingerprint"]
        key = (fp, bytes(row["data"]))
        loaded = self._pgp_cache.get(key)
        if loaded is None:
            try:
                loaded = openpgp.load_cert(key[1], now)
            except openpgp.CertificateError as exc:
                return KeyFact(fp, row["source"], False, f"unreadable ({exc})"), None
            with self._lock:
                if len(self._pgp_cache) >= PARSED_KEPT:
                    self._pgp_cache.clear()
                self._pgp_cache[key] = loaded
        ok, reason = loaded.info.usable_for(address, now)
        return KeyFact(fp, row["source"], ok, "" if ok else reason), loaded

    def _smime_fact(self, row: Any, address: str, now: datetime) -> tuple[KeyFact, Any]:
        fp = row["fingerprint"]
        info = self._smime_cache.get(fp)
        if info is None:
            try:
                info = smime.inspect_certificate(row["data"])
            except smime.CertificateError as exc:
                return KeyFact(fp, row["source"], False, f"unreadable ({exc})"), None
            with self._lock:
                if len(self._smime_cache) >= PARSED_KEPT:
                    self._smime_cache.clear()
                self._smime_cache[fp] = info
        trust = self.trust.with_trusted_fingerprint(info.fingerprint_sha256) if row["trusted"] else self.trust
        ok, reason = smime.usable_for(info, address, now=now, trust=trust)
        return KeyFact(fp, row["source"], ok, "" if ok else reason), info.certificate


class DbDiscoveryCache:
    """``keys.cache.DiscoveryCache`` in the database, per tenant, shared by every worker.

    ``prefetch`` reads the entries for many keys in one query; ``get`` then answers those
    keys (including "no entry") without going back to the database.
    """

    def __init__(self, engine: Engine, tenant_id: str) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self._prefetched: dict[tuple[str, str], DiscoveryEntry | None] = {}

    @staticmethod
    def _entry(row: Any, now: float) -> DiscoveryEntry | None:
        if row is None or row["expires_at"].timestamp() <= now:
            return None
        return DiscoveryEntry(
            DiscoveryStatus(row["status"]),
            row["cert"],
            row["source"],
            row["detail"],
            row["checked_at"].timestamp(),
            row["expires_at"].timestamp(),
        )

    def _get(self, method: str, address: str, now: float) -> DiscoveryEntry | None:
        with db.reader(self.engine) as conn:
            row = (
                conn.execute(
                    sa.select(key_discovery).where(
                        key_discovery.c.tenant_id == self.tenant_id,
                        key_discovery.c.method == method,
                        key_discovery.c.address == address.strip().lower(),
                    )
                )
                .mappings()
                .first()
            )
        return self._entry(row, now)

    def _prefetch(self, keys: Sequence[tuple[str, str]], now: float) -> None:
        wanted = {(m, a.strip().lower()) for m, a in keys}
        if not wanted:
            return
        by_method: dict[str, list[str]] = {}
        for method, address in wanted:
            by_method.setdefault(method, []).append(address)
        clauses = [
            sa.and_(key_discovery.c.method == m, key_discovery.c.address.in_(sorted(a)))
            for m, a in sorted(by_method.items())
        ]
        with db.reader(self.engine) as conn:
            rows = (
                conn.execute(
                    sa.select(key_discovery).where(
                        key_discovery.c.tenant_id == self.tenant_id, sa.or_(*clauses)
                    )
                )
                .mappings()
                .all()
            )
        found = {(r["method"], r["address"]): r for r in rows}
        for key in wanted:
            self._prefetched[key] = self._entry(found.get(key), now)

    def _put(self, method: str, address: str, entry: DiscoveryEntry) -> None:
        values = {
            "status": str(entry.status),
            "source": entry.source,
            "cert": entry.cert,
            "detail": entry.detail[:300],
            "checked_at": datetime.fromtimestamp(entry.fetched_at, UTC),
            "expires_at": datetime.fromtimestamp(entry.expires_at, UTC),
        }
        key = {"tenant_id": self.tenant_id, "method": method, "address": address.strip().lower()}
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(key_discovery)
                .where(
                    key_discovery.c.tenant_id == key["tenant_id"],
                    key_discovery.c.method == method,
                    key_discovery.c.address == key["address"],
                )
                .values(**values)
            )
            if done.rowcount == 0:
                conn.execute(sa.insert(key_discovery).values(**key, **values))

    async def prefetch(self, keys: Sequence[tuple[str, str]], *, now: float) -> None:
        """Read the entries for ``(method, address)`` keys in one query, for later ``get``s."""
        await asyncio.to_thread(self._prefetch, keys, now)

    def peek(self, method: str, address: str, *, now: float) -> DiscoveryEntry | None:
        """A prefetched, still valid entry (no database access)."""
        entry = self._prefetched.get((method, address.strip().lower()))
        return entry if entry is not None and entry.expires_at > now else None

    async def get(self, method: str, address: str, *, now: float) -> DiscoveryEntry | None:
        key = (method, address.strip().lower())
        if key in self._prefetched:
            entry = self._prefetched[key]
            return entry if entry is not None and entry.expires_at > now else None
        return await asyncio.to_thread(self._get, method, address, now)

    async def put(self, method: str, address: str, entry: DiscoveryEntry) -> None:
        self._prefetched[(method, address.strip().lower())] = entry
        try:
            await asyncio.to_thread(self._put, method, address, entry)
        except sa.exc.IntegrityError:
            pass  # another worker cached the same answer a moment earlier


def _inspect(
    kind: str, data: bytes, now: datetime, source: str
) -> tuple[str, tuple[str, ...], datetime | None]:
    """(fingerprint, addresses, expiry) of a certificate mail could be encrypted to, or
    ``ValidationFailed`` naming why it is unusable."""
    if kind == "pgp":
        try:
            info = openpgp.inspect_cert(data, now)
        except openpgp.CertificateError as exc:
            raise ValidationFailed([{"field": "key", "message": str(exc)}]) from exc
        fingerprint, emails, expires = info.fingerprint, tuple(info.emails), info.expires
        # A key not valid *yet* (clock skew) becomes usable; only lasting problems refuse it.
        problem = info.encryption_problem(now) or ""
        problem = "" if problem.startswith("not valid before") else problem
    else:
        try:
            sinfo = smime.inspect_certificate(data)
        except smime.CertificateError as exc:
            raise ValidationFailed([{"field": "key", "message": str(exc)}]) from exc
        fingerprint, emails, expires = sinfo.fingerprint_sha256.upper(), tuple(sinfo.emails), sinfo.not_after
        problem = smime.encryption_problem(sinfo, now=now)
    if problem:
        # Issue 12: a key no mail could be encrypted to is refused with the reason, not
        # stored silently to surface later as an unexplained fallback.
        label = "OpenPGP key" if kind == "pgp" else "S/MIME certificate"
        short = KeyFact(fingerprint, source, False).short
        raise ValidationFailed([{"field": "key", "message": f"{label} {short} is unusable: {problem}"}])
    return fingerprint, emails, expires


def _addresses_to_store(emails: tuple[str, ...], only_address: str | None) -> list[str]:
    """Every address the certificate names, or only the looked-up one (discovery)."""
    if only_address is not None:
        wanted = only_address.strip().lower()
        if wanted not in emails:
            raise ValidationFailed([{"field": "key", "message": "the certificate does not name the address"}])
        emails = (wanted,)
    if not emails:
        raise ValidationFailed([{"field": "key", "message": "the certificate names no email address"}])
    return sorted(set(emails))


def _store_key(
    conn: Connection, tenant_id: str, kind: str, address: str, fingerprint: str, values: dict[str, Any]
) -> str:
    """Insert the key for one address, or refresh the row that already holds it; its id."""
    existing = conn.execute(
        sa.select(recipient_keys.c.id).where(
            recipient_keys.c.tenant_id == tenant_id,
            recipient_keys.c.kind == kind,
            recipient_keys.c.address == address,
            recipient_keys.c.fingerprint == fingerprint,
        )
    ).first()
    if existing:
        conn.execute(sa.update(recipient_keys).where(recipient_keys.c.id == existing.id).values(**values))
        return str(existing.id)
    key_id = new_id("rk")
    conn.execute(
        sa.insert(recipient_keys).values(
            id=key_id,
            tenant_id=tenant_id,
            kind=kind,
            address=address,
            fingerprint=fingerprint,
            created_at=values["updated_at"],
            **values,
        )
    )
    return key_id
