"""Contacts: one row per (tenant, email), typed attributes, sensitive ones sealed.

Writes are upserts by email (lower-cased, as the suppression list compares addresses).
A contact's ``sensitive`` attributes are sealed together under a per-contact data key
wrapped by the tenant key (``tenancy.keyring``), bound to the contact id; an HMAC token
per value (``blind``, keyed per tenant) lets a segment test equality without opening them.
Reads hand back only the attributes of the PHI classes the caller may see, and a sealed
value is opened only for a caller allowed to see ``sensitive``.

Audit entries name the contact id and which attributes changed, never a value or address.

Size: the row's write paths — SQLite upsert, PostgreSQL COPY of new contacts and the
database-side merge of existing ones, the re-seal of sensitive values — share one row
layout (``_COPY_COLUMNS``, ``_new_row``, ``_changed_row``) and must change together.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any
from zoneinfo import available_timezones

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain import zones
from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.marketing import ContactStatus, PhiClass
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_ids
from sealmail.marketing import attributes as attrs
from sealmail.marketing import copy_text
from sealmail.marketing.attributes import AttributeDef
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.store import db
from sealmail.suppressions.export import csv_line
from sealmail.tenancy.keyring import Keyring

DEFAULT_TZ = "UTC"
_SENSITIVE = PhiClass.SENSITIVE
_STATUSES = frozenset(ContactStatus)
# The order ``Contacts._copy_line`` writes a new contact's fields in.
_COPY_COLUMNS = (
    "id",
    "email",
    "phone",
    "tz",
    "status",
    "attrs",
    "blind",
    "sealed",
    "key_id",
    "wrapped_key",
    "tenant_id",
    "created_at",
    "updated_at",
)


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - zones.SERVER_ALIASES


@dataclass(frozen=True, slots=True)
class ContactData:
    """One contact as given (API body or CSV row), before validation."""

    email: str
    phone: str | None = None
    tz: str | None = None
    status: str | None = None
    attributes: dict[str, Any] | None = None


@dataclass(slots=True)
class Clean:
    email: str
    phone: str | None
    tz: str | None
    status: str | None
    plain: dict[str, Any]  # non-sensitive attribute values (None = unset)
    secret: dict[str, Any]  # sensitive ones


def validate(data: ContactData, defs: dict[str, AttributeDef]) -> tuple[Clean | None, list[dict[str, str]]]:
    """Check and normalize one contact; (clean, []) or (None, errors by field)."""
    return Validator(defs)(data)


_PHONE_ERROR = {"field": "phone", "message": "must be a valid number in E.164 form, e.g. +14155550123"}
_TZ_ERROR = {"field": "tz", "message": "must be an IANA time zone such as America/Chicago"}
_STATUS_ERROR = {"field": "status", "message": f"use one of {', '.join(ContactStatus)}"}


class Validator:
    """``validate`` for one tenant's declarations, built once per import: each attribute's
    coercer and PHI class are looked up here, not for every cell of every row."""

    def __init__(self, defs: dict[str, AttributeDef]) -> None:
        self._specs = {n: (attrs.coercer(d), d.phi_class is _SENSITIVE) for n, d in defs.items()}
        self._zones = _zones()

    def __call__(self, data: ContactData) -> tuple[Clean | None, list[dict[str, str]]]:
        errors: list[dict[str, str]] = []
        email = ""
        try:
            email = normalize_email(data.email or "")
        except InvalidAddress as exc:
            errors.append({"field": "email", "message": exc.reason})
        phone = data.phone.strip() if data.phone else None
        if phone:
            phone = _e164(phone)
            if phone is None:
                errors.append(dict(_PHONE_ERROR))
        tz = data.tz.strip() if data.tz else None
        if tz and tz not in self._zones:
            errors.append(dict(_TZ_ERROR))
        status = data.status.strip().lower() if data.status else None
        if status and status not in _STATUSES:
            errors.append(dict(_STATUS_ERROR))
        plain: dict[str, Any] = {}
        secret: dict[str, Any] = {}
        if data.attributes:
            self._attributes(data.attributes, plain, secret, errors)
        if errors:
            return None, errors
        return Clean(email, phone or None, tz or None, status or None, plain, secret), []

    def _attributes(
        self,
        values: dict[str, Any],
        plain: dict[str, Any],
        secret: dict[str, Any],
        errors: list[dict[str, str]],
    ) -> None:
        """Coerce a contact's attributes into ``plain`` and ``secret`` (None = unset)."""
        specs = self._specs
        for name, raw in values.items():
            spec = specs.get(name)
            if spec is None:
                errors.append({"field": f"attributes.{name}"[:60], "message": "is not a declared attribute"})
                continue
            convert, sensitive = spec
            value = None
            # Blank means unset; isspace() answers that without stripping a copy.
            if raw is not None and not (isinstance(raw, str) and (not raw or raw.isspace())):
                try:
                    value = convert(raw)
                except ValueError as exc:
                    errors.append({"field": f"attributes.{name}", "message": str(exc)})
                    continue
            (secret if sensitive else plain)[name] = value


# RFC 5322 §3.2.3 dot-atom, ASCII: the shape nearly every imported address has.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@lru_cache(maxsize=4096)
def _domain_ok(domain: str) -> str:
    """The intake validator's verdict on a domain, once per domain (IDNA checks are costly)."""
    return parse_address(f"x@{domain}", "email").addr_spec.rpartition("@")[2]


def normalize_email(raw: str) -> str:
    """The stored (lower-cased) form of a contact's address, validated as intake validates.

    A plain ASCII dot-atom local part is checked here and its domain by the intake
    validator once per distinct domain, which is what makes imports fast; anything else
    (quoted local parts, Unicode, display names) goes through the full parser.
    """
    local, at, domain = raw.strip().rpartition("@")
    if at and len(local) <= 64 and _DOT_ATOM.fullmatch(local) and domain.isascii():
        return f"{local}@{_domain_ok(domain.lower())}".lower()
    return parse_address(raw, "email").addr_spec.lower()


def _e164(raw: str) -> str | None:
    text = raw.strip()
    if len(text) > 32:
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def blind_token(tenant_key: bytes, name: str, value: Any) -> str:
    """The equality token of a sensitive value (the same value always gives the same token)."""
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value.strip().lower()
    return hmac.new(tenant_key, f"{name}\x00{text}".encode(), hashlib.sha256).hexdigest()[:40]


class Contacts:
    """Upsert, read, list and export a tenant's contacts (API, CLI, import)."""

    def __init__(self, engine: Engine, keyring: Keyring, blind_root: Callable[[], bytes]) -> None:
        self.engine = engine
        self.keyring = keyring
        self._blind_root = blind_root
        self._root: bytes | None = None

    def blind_key(self, tenant_id: str) -> bytes:
        """The tenant's blind-index key.  Call once before a write transaction: the first
        call may create the site secret, a write of its own (SQLite has one writer)."""
        if self._root is None:
            self._root = self._blind_root()
        return hmac.new(self._root, tenant_id.encode(), hashlib.sha256).digest()

    # -- writing -------------------------------------------------------------------------------
    def save(
        self, tenant_id: str, data: ContactData, *, actor: str, classes: frozenset[PhiClass]
    ) -> tuple[dict[str, Any], bool]:
        """Upsert one contact by email; (contact as the writer sees it, created?)."""
        self.blind_key(tenant_id)
        with db.write(self.engine) as conn:
            defs = attrs.load(conn, tenant_id)
            clean, errors = validate(data, defs)
            if clean is None:
                raise ValidationFailed(errors)
            contact_id, created = self.write(conn, tenant_id, [clean])[0]
            audit.append(
                conn,
                action=AuditAction.MKT_CONTACT_SAVED,
                actor=actor,
                tenant_id=tenant_id,
                target=contact_id,
                details={"created": created, "attributes": sorted({*clean.plain, *clean.secret})},
            )
            row = conn.execute(sa.select(ct).where(ct.c.id == contact_id)).one()
            return self._render(row, defs, classes), created

    def write(self, conn: Connection, tenant_id: str, rows: list[Clean]) -> list[tuple[str, bool]]:
        """Upsert validated contacts in the caller's transaction; (id, created?) for each.

        Several rows for one email: the later one wins, as if written one after the other.
        """
        now = datetime.now(UTC)
        merged: dict[str, Clean] = {}
        for c in rows:
            prev = merged.get(c.email)
            merged[c.email] = c if prev is None else _merge_clean(prev, c)
        # A contact without sensitive values is merged in SQL (``_merge``), so only the ids
        # are read back; a sealed value is re-sealed here, so its row is read whole then.
        found = (
            conn.execute(PG_EXISTING, {"t": tenant_id, "emails": list(merged)})
            if conn.dialect.name == "postgresql"
            else conn.execute(
                sa.select(ct.c.id, ct.c.email).where(ct.c.tenant_id == tenant_id, _email_in(list(merged)))
            )
        )
        existing = {r.email: r.id for r in found}
        key = self.blind_key(tenant_id)
        fresh_rows: list[tuple[str, Clean]] = []
        merges: list[tuple[str, Clean]] = []
        ids: dict[str, tuple[str, bool]] = {}
        fresh = iter(new_ids("ctc", len(merged) - len(existing)))
        for email, c in merged.items():
            old = existing.get(email)
            if old is None:
                cid = next(fresh)
                fresh_rows.append((cid, c))
                ids[email] = (cid, True)
            else:
                merges.append((old, c))
                ids[email] = (old, False)
        self._insert(conn, tenant_id, fresh_rows, key, now)
        if merges:
            self._merge(conn, tenant_id, merges, key, now)
        return [ids[c.email] for c in rows]

    def _merge(
        self, conn: Connection, tenant_id: str, merges: list[tuple[str, Clean]], key: bytes, now: datetime
    ) -> None:
        """Existing contacts updated as ``_changed_row`` does, in one statement for those
        without sensitive values: the new values as one JSON array, merged into each row by
        the database (``_PG_MERGE``, ``_SQLITE_MERGE``).  Reading each row whole to merge it
        here, then an ``UPDATE`` a row, cost more than the whole insert path: half of it
        decoding and re-encoding the stored JSON.  Rows that carry sensitive values need their
        sealed ones opened and re-sealed: read whole, updated one by one as before."""
        plain = [
            {"id": cid, "phone": c.phone, "tz": c.tz, "status": c.status, "attrs": c.plain}
            for cid, c in merges
            if not c.secret
        ]
        if plain:
            merge = _PG_MERGE if conn.dialect.name == "postgresql" else _SQLITE_MERGE
            conn.execute(merge, {"rows": json.dumps(plain), "now": now})
        sealed = {cid: c for cid, c in merges if c.secret}
        if sealed:
            olds = conn.execute(sa.select(ct).where(ct.c.id.in_(list(sealed))))
            db.bulk_update(
                conn, ct, "id", [self._changed_row(tenant_id, old, sealed[old.id], key, now) for old in olds]
            )

    def _insert(
        self, conn: Connection, tenant_id: str, rows: list[tuple[str, Clean]], key: bytes, now: datetime
    ) -> None:
        if not rows:
            return
        if conn.dialect.name != "postgresql":
            db.bulk_insert(conn, ct, [self._new_row(tenant_id, cid, c, key, now) for cid, c in rows])
            return
        stamp = now.isoformat()
        tail = f"\t{copy_text.field(tenant_id)}\t{stamp}\t{stamp}\n"
        lines = [self._copy_line(tenant_id, cid, c, key) + tail for cid, c in rows]
        db.copy_text(conn, ct, _COPY_COLUMNS, "".join(lines))

    def _copy_line(self, tenant_id: str, cid: str, c: Clean, key: bytes) -> str:
        """A new contact as ``_COPY_COLUMNS`` up to ``wrapped_key``, in COPY text."""
        plain = (
            c.plain if None not in c.plain.values() else {k: v for k, v in c.plain.items() if v is not None}
        )
        sealed, blind = copy_text.NULL, "{}"
        if c.secret:
            secret = {k: v for k, v in c.secret.items() if v is not None}
            key_id, wrapped, blob = self._seal(tenant_id, cid, secret)
            blind = copy_text.json_object({k: blind_token(key, k, v) for k, v in secret.items()})
            sealed = f"{copy_text.bytea(blob)}\t{copy_text.field(key_id)}\t{copy_text.bytea(wrapped)}"
        else:
            sealed = f"{sealed}\t{sealed}\t{sealed}"
        return (
            f"{cid}\t{copy_text.field(c.email)}\t{c.phone or copy_text.NULL}\t{c.tz or DEFAULT_TZ}"
            f"\t{c.status or ContactStatus.ACTIVE}\t{copy_text.json_object(plain)}\t{blind}\t{sealed}"
        )

    def _seal(
        self, tenant_id: str, cid: str, secret: dict[str, Any]
    ) -> tuple[str | None, bytes | None, bytes | None]:
        if not secret:
            return None, None, None
        return self.keyring.seal(tenant_id, cid, json.dumps(secret, sort_keys=True).encode())

    def _new_row(self, tenant_id: str, cid: str, c: Clean, key: bytes, now: datetime) -> dict[str, Any]:
        secret = {k: v for k, v in c.secret.items() if v is not None}
        key_id, wrapped, blob = self._seal(tenant_id, cid, secret)
        return {
            "id": cid,
            "tenant_id": tenant_id,
            "email": c.email,
            "phone": c.phone,
            "tz": c.tz or DEFAULT_TZ,
            "status": c.status or ContactStatus.ACTIVE,
            "attrs": {k: v for k, v in c.plain.items() if v is not None},
            "blind": {k: blind_token(key, k, v) for k, v in secret.items()},
            "sealed": blob,
            "key_id": key_id,
            "wrapped_key": wrapped,
            "created_at": now,
            "updated_at": now,
        }

    def _changed_row(self, tenant_id: str, old: Any, c: Clean, key: bytes, now: datetime) -> dict[str, Any]:
        plain = {**(old.attrs or {}), **c.plain}
        secret_blob, key_id, wrapped = old.sealed, old.key_id, old.wrapped_key
        blind = dict(old.blind or {})
        if c.secret:
            secret = {**self._open(tenant_id, old), **c.secret}
            secret = {k: v for k, v in secret.items() if v is not None}
            key_id, wrapped, secret_blob = self._seal(tenant_id, old.id, secret)
            blind = {k: blind_token(key, k, v) for k, v in secret.items()}
        return {
            "id": old.id,
            "phone": c.phone if c.phone is not None else old.phone,
            "tz": c.tz or old.tz,
            "status": c.status or old.status,
            "attrs": {k: v for k, v in plain.items() if v is not None},
            "blind": blind,
            "sealed": secret_blob,
            "key_id": key_id,
            "wrapped_key": wrapped,
            "updated_at": now,
        }

    def secrets(self, tenant_id: str, row: Any) -> dict[str, Any]:
        """A contact row's sensitive values, opened (for personalization inside a message
        that is itself encrypted at rest and protected by SecureLine)."""
        return self._open(tenant_id, row)

    def _open(self, tenant_id: str, row: Any) -> dict[str, Any]:
        if row.sealed is None:
            return {}
        opened: dict[str, Any] = json.loads(
            self.keyring.open(tenant_id, row.id, row.key_id, row.wrapped_key, row.sealed)
        )
        return opened

    # -- reading -------------------------------------------------------------------------------
    def _render(
        self, row: Any, defs: dict[str, AttributeDef], classes: frozenset[PhiClass]
    ) -> dict[str, Any]:
        visible = {k: v for k, v in (row.attrs or {}).items() if k in defs and defs[k].phi_class in classes}
        if PhiClass.SENSITIVE in classes:
            visible.update(self._open(row.tenant_id, row))
        return {
            "id": row.id,
            "email": row.email,
            "phone": row.phone,
            "tz": row.tz,
            "status": row.status,
            "attributes": dict(sorted(visible.items())),
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }

    def get(self, tenant_id: str, contact_id: str, classes: frozenset[PhiClass]) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(ct).where(ct.c.tenant_id == tenant_id, ct.c.id == contact_id)
            ).first()
            if row is None:
                raise NotFound(f"no contact {contact_id!r}")
            return self._render(row, attrs.load(conn, tenant_id), classes)

    def reveal(self, tenant_id: str, contact_id: str, *, actor: str) -> dict[str, Any]:
        """``get`` with every PHI class, sealed values opened; audited with the classes and
        attribute names shown (never a value) before it is returned."""
        shown = self.get(tenant_id, contact_id, attrs.ALL_CLASSES)
        names = sorted(shown["attributes"])
        with db.write(self.engine) as conn:
            defs = attrs.load(conn, tenant_id)
            details = {"phi_classes": sorted({str(defs[n].phi_class) for n in names}), "attributes": names}
            audit.append(conn, action=AuditAction.MKT_CONTACT_REVEALED, actor=actor, tenant_id=tenant_id,
                         target=contact_id, details=details)  # fmt: skip
        return shown

    def find(self, tenant_id: str, email: str) -> str | None:
        with db.reader(self.engine) as conn:
            return conn.execute(
                sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, ct.c.email == email.strip().lower())
            ).scalar()

    def page(
        self, tenant_id: str, classes: frozenset[PhiClass], *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        q = sa.select(ct).where(ct.c.tenant_id == tenant_id)
        if cursor:
            q = q.where(ct.c.id > cursor)
        with db.reader(self.engine) as conn:
            defs = attrs.load(conn, tenant_id)
            rows = conn.execute(q.order_by(ct.c.id).limit(limit + 1)).all()
        page = rows[:limit]
        return {
            "data": [self._render(r, defs, classes) for r in page],
            "next_cursor": page[-1].id if len(rows) > limit and page else None,
        }

    def export_csv(
        self, tenant_id: str, classes: frozenset[PhiClass], *, actor: str, page: int = 1000
    ) -> Iterator[str]:
        """CSV of every contact with only the attribute columns of ``classes`` (audited)."""
        with db.write(self.engine) as conn:
            defs = attrs.load(conn, tenant_id)
            columns = sorted(n for n, d in defs.items() if d.phi_class in classes)
            audit.append(
                conn,
                action=AuditAction.MKT_CONTACTS_EXPORTED,
                actor=actor,
                tenant_id=tenant_id,
                details={"phi_classes": sorted(str(c) for c in classes), "columns": columns},
            )
        return self._lines(tenant_id, defs, columns, classes, page)

    def _lines(
        self,
        tenant_id: str,
        defs: dict[str, AttributeDef],
        columns: list[str],
        classes: frozenset[PhiClass],
        page: int,
    ) -> Iterator[str]:
        yield csv_line(["email", "phone", "tz", "status", *columns])
        cursor = ""
        while True:
            # Each page is its own short read: a slow download holds no transaction open.
            with db.reader(self.engine) as conn:
                rows = conn.execute(
                    sa.select(ct)
                    .where(ct.c.tenant_id == tenant_id, ct.c.id > cursor)
                    .order_by(ct.c.id)
                    .limit(page)
                ).all()
            for r in rows:
                shown = self._render(r, defs, classes)["attributes"]
                cells = [_cell(shown.get(c)) for c in columns]
                yield csv_line([r.email, r.phone or "", r.tz, r.status, *cells])
            if len(rows) < page:
                return
            cursor = rows[-1].id


# ``_changed_row`` in SQL: a given phone, zone or status replaces the stored one; attributes
# are merged over the stored ones and a null (a blank cell) removes one — stored attributes
# never hold a null, so ``jsonb_strip_nulls`` removes exactly the blanked ones.
_PG_MERGE = sa.text(
    "UPDATE mkt_contacts AS c SET phone = coalesce(v.phone, c.phone), tz = coalesce(v.tz, c.tz),"
    " status = coalesce(v.status, c.status), attrs = jsonb_strip_nulls(c.attrs || v.attrs),"
    " updated_at = :now"
    " FROM jsonb_to_recordset(CAST(:rows AS JSONB))"
    " AS v(id VARCHAR, phone VARCHAR, tz VARCHAR, status VARCHAR, attrs JSONB)"
    " WHERE c.id = v.id"
)


# One probe of the (tenant, email) index per email, whatever the statistics say.  As
# ``email = ANY(:emails)`` the plan depended on them: while a tenant's first import grows
# the table faster than autovacuum analyzes it (or a new tenant joins a big shared table),
# the planner thought ``tenant_id = :t`` selective and read every one of the tenant's
# contacts through the tenant index for each chunk, so an import slowed as it went (1M
# rows: 16 ms of server CPU per 1,000 rows at the start, 1,200 at 300k).  ``LIMIT 1`` in a
# lateral subquery keeps it a nested loop of unique-key lookups (one row at most: unique).
PG_EXISTING = sa.text(
    "SELECT c.id, c.email FROM unnest(CAST(:emails AS VARCHAR[])) AS e(email)"
    " CROSS JOIN LATERAL (SELECT id, email FROM mkt_contacts"
    " WHERE tenant_id = :t AND email = e.email LIMIT 1) AS c"
)


# SQLite (3.33+: UPDATE … FROM; 3.38+: ->>): ``json_patch`` drops a key patched to null,
# as ``jsonb_strip_nulls`` does after ``||`` (stored attributes never hold a null, and
# their values are scalars or arrays, which both replace whole).
_SQLITE_MERGE = sa.text(
    "UPDATE mkt_contacts AS c SET phone = coalesce(v.phone, c.phone), tz = coalesce(v.tz, c.tz),"
    " status = coalesce(v.status, c.status), attrs = json_patch(coalesce(c.attrs, '{}'), v.attrs),"
    " updated_at = :now"
    " FROM (SELECT value ->> '$.id' AS id, value ->> '$.phone' AS phone, value ->> '$.tz' AS tz,"
    " value ->> '$.status' AS status, value -> '$.attrs' AS attrs FROM json_each(:rows)) AS v"
    " WHERE c.id = v.id"
).bindparams(sa.bindparam("now", type_=ct.c.updated_at.type))


def _email_in(emails: list[str]) -> ColumnElement[bool]:
    """SQLite: ``email IN (…)`` as one bound parameter, a JSON array unpacked by
    ``json_each`` (a thousand placeholders cost more to build and parse than the lookup
    itself)."""
    unpacked = sa.text("SELECT value FROM json_each(:emails)").bindparams(emails=json.dumps(emails))
    return ct.c.email.in_(unpacked.columns(sa.column("value", sa.String)))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _merge_clean(a: Clean, b: Clean) -> Clean:
    return Clean(
        b.email,
        b.phone if b.phone is not None else a.phone,
        b.tz or a.tz,
        b.status or a.status,
        {**a.plain, **b.plain},
        {**a.secret, **b.secret},
    )
