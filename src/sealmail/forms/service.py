"""Form definitions per tenant: create, version, archive, read.

Every change writes a new version row and its audit entry in one transaction; a version
is never edited, so a stored submission always finds the fields its submitter saw.
The sender must be on one of the tenant's verified domains when the version is saved,
so a form can never be published that would fail at the moment a patient submits it.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound, ValidationFailed
from sealmail.forms.definition import FormDefinition
from sealmail.forms.states import FormStatus
from sealmail.forms.tables import form_versions, forms
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.tenancy.service import Principal, Tenancy


class Forms:
    def __init__(self, engine: Engine, tenancy: Tenancy, public_url: str) -> None:
        self.engine = engine
        self.tenancy = tenancy
        self.public_url = public_url.rstrip("/")

    def url(self, form_id: str) -> str:
        """Where the hosted form lives (the portal role's ``/f``)."""
        return f"{self.public_url}/f/{form_id}"

    def _check_sender(self, tenant_id: str, definition: FormDefinition) -> None:
        if not self.tenancy.is_verified_sender_domain(tenant_id, definition.sender_domain):
            raise ValidationFailed(
                [
                    {
                        "field": "sender",
                        "message": "the sender's domain is not a verified domain of this tenant",
                    }
                ]
            )

    def create(self, who: Principal, definition: FormDefinition) -> dict[str, Any]:
        self._check_sender(who.tenant_id, definition)
        now = datetime.now(UTC)
        form_id = new_id("form")
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(forms).values(
                    id=form_id,
                    tenant_id=who.tenant_id,
                    name=definition.title,
                    current_version=1,
                    status=FormStatus.ACTIVE,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._version(conn, who, form_id, 1, definition, now)
            audit.append(
                conn,
                action=AuditAction.FORM_CREATED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=form_id,
                details={"version": 1, "fields": len(definition.fields)},
            )
        return self.get(who, form_id)

    def update(self, who: Principal, form_id: str, definition: FormDefinition) -> dict[str, Any]:
        """Publish a new version; earlier versions stay for the submissions that used them."""
        with db.reader(self.engine) as conn:
            self._row(conn, who.tenant_id, form_id)  # another tenant's form is a 404 first
        self._check_sender(who.tenant_id, definition)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = self._row(conn, who.tenant_id, form_id, lock=True)
            if row.status != FormStatus.ACTIVE:
                raise NotFound(f"form {form_id} is archived")
            version = int(row.current_version) + 1
            self._version(conn, who, form_id, version, definition, now)
            conn.execute(
                sa.update(forms)
                .where(forms.c.id == form_id, forms.c.tenant_id == who.tenant_id)
                .values(current_version=version, name=definition.title, updated_at=now)
            )
            audit.append(
                conn,
                action=AuditAction.FORM_VERSION_CREATED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=form_id,
                details={"version": version, "fields": len(definition.fields)},
            )
        return self.get(who, form_id)

    def archive(self, who: Principal, form_id: str) -> dict[str, Any]:
        """Take the hosted form down; its versions and submissions stay."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = self._row(conn, who.tenant_id, form_id, lock=True)
            if row.status == FormStatus.ACTIVE:
                conn.execute(
                    sa.update(forms)
                    .where(forms.c.id == form_id, forms.c.tenant_id == who.tenant_id)
                    .values(status=FormStatus.ARCHIVED, updated_at=now)
                )
                audit.append(
                    conn,
                    action=AuditAction.FORM_ARCHIVED,
                    actor=who.credential_id,
                    tenant_id=who.tenant_id,
                    target=form_id,
                )
        return self.get(who, form_id)

    def _version(
        self, conn: Connection, who: Principal, form_id: str, version: int, d: FormDefinition, now: datetime
    ) -> None:
        conn.execute(
            sa.insert(form_versions).values(
                form_id=form_id,
                version=version,
                tenant_id=who.tenant_id,
                definition=d.model_dump(mode="json"),
                created_by=who.credential_id,
                created_at=now,
            )
        )

    def _row(self, conn: Connection, tenant_id: str, form_id: str, *, lock: bool = False) -> Any:
        q = sa.select(forms).where(forms.c.id == form_id, forms.c.tenant_id == tenant_id)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise NotFound(f"no form {form_id}")
        return row

    # -- reading --------------------------------------------------------------------------------
    def get(self, who: Principal, form_id: str, version: int | None = None) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            row = self._row(conn, who.tenant_id, form_id)
            definition = self.definition(conn, who.tenant_id, form_id, version or int(row.current_version))
        return self._out(row, definition, version or int(row.current_version))

    def list(self, who: Principal, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        q = sa.select(forms).where(forms.c.tenant_id == who.tenant_id).order_by(forms.c.id).limit(limit + 1)
        if cursor:
            q = q.where(forms.c.id > cursor)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q).all()
            page = rows[:limit]
            data = [
                self._out(r, self.definition(conn, who.tenant_id, r.id, r.current_version), r.current_version)
                for r in page
            ]
        return {"data": data, "next_cursor": page[-1].id if len(rows) > limit else None}

    def versions(self, who: Principal, form_id: str) -> builtins.list[dict[str, Any]]:
        """Every version of a form, newest first (who saved it and when)."""
        v = form_versions.c
        with db.reader(self.engine) as conn:
            self._row(conn, who.tenant_id, form_id)
            rows = conn.execute(
                sa.select(v.version, v.created_by, v.created_at)
                .where(v.form_id == form_id, v.tenant_id == who.tenant_id)
                .order_by(v.version.desc())
            ).all()
        return [{"version": r.version, "created_by": r.created_by, "created_at": r.created_at} for r in rows]

    def definition(self, conn: Connection, tenant_id: str, form_id: str, version: int) -> FormDefinition:
        stored = conn.execute(
            sa.select(form_versions.c.definition).where(
                form_versions.c.form_id == form_id,
                form_versions.c.tenant_id == tenant_id,
                form_versions.c.version == version,
            )
        ).scalar_one_or_none()
        if stored is None:
            raise NotFound(f"form {form_id} has no version {version}")
        return FormDefinition.model_validate(stored)

    def _out(self, row: Any, definition: FormDefinition, version: int) -> dict[str, Any]:
        return {
            "id": row.id,
            "name": row.name,
            "status": row.status,
            "current_version": row.current_version,
            "version": version,
            "url": self.url(row.id),
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "definition": definition.model_dump(mode="json"),
        }
