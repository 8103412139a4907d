"""Stored templates: immutable versions per (tenant, name); the newest version is active.

Every query is scoped by the tenant id passed in, so another tenant's template is simply
not found (404, never 403).  A template is compiled before it is stored, so a syntax
error is refused at write time rather than discovered per recipient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import Conflict, NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.templates.render import Compiled, Source
from sealmail.templates.tables import message_templates as mt

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ValidationFailed(
            [{"field": "name", "message": "1–100 characters: letters, digits, '.', '_' or '-'"}]
        )


@dataclass(frozen=True, slots=True)
class Template:
    """One stored version of a template."""

    name: str
    version: int
    subject: str
    html: str | None
    text: str | None
    created_at: datetime
    created_by: str

    @classmethod
    def from_row(cls, row: Any) -> Template:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    @property
    def source(self) -> Source:
        return Source(self.subject, self.html, self.text)


@dataclass(frozen=True, slots=True)
class TemplateVersions:
    """A version of a template, and every version number the name has."""

    template: Template
    versions: tuple[int, ...]


class TemplateStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, tenant_id: str, name: str, source: Source, actor: str) -> Template:
        """Version 1 of a new name; 409 if the name exists (PUT adds versions)."""
        check_name(name)
        Compiled(source)
        try:
            with db.write(self.engine) as conn:
                if self._latest(conn, tenant_id, name) is not None:
                    raise Conflict(f"template {name!r} exists; PUT /v1/templates/{name} adds a version")
                row = self._insert(conn, tenant_id, name, 1, source, actor, AuditAction.TEMPLATE_CREATED)
        except IntegrityError as exc:  # a concurrent create of the same name won
            raise Conflict(f"template {name!r} exists; PUT /v1/templates/{name} adds a version") from exc
        return row

    def add_version(self, tenant_id: str, name: str, source: Source, actor: str) -> Template:
        """The next version of an existing template; it becomes the active one."""
        check_name(name)
        Compiled(source)
        try:
            with db.write(self.engine) as conn:
                latest = self._latest(conn, tenant_id, name)
                if latest is None:
                    raise NotFound(f"no template {name!r}; create it with POST /v1/templates")
                return self._insert(
                    conn,
                    tenant_id,
                    name,
                    int(latest.version) + 1,
                    source,
                    actor,
                    AuditAction.TEMPLATE_VERSION_CREATED,
                )
        except IntegrityError as exc:  # two PUTs raced for the same version number
            raise Conflict(f"template {name!r} changed meanwhile; send the PUT again") from exc

    def get(self, tenant_id: str, name: str, version: int | None = None) -> TemplateVersions:
        with db.reader(self.engine) as conn:
            if version is None:
                row = self._latest(conn, tenant_id, name)
            else:
                row = conn.execute(
                    sa.select(mt).where(
                        mt.c.tenant_id == tenant_id, mt.c.name == name, mt.c.version == version
                    )
                ).first()
            if row is None:
                suffix = f" version {version}" if version is not None else ""
                raise NotFound(f"no template {name!r}{suffix}; GET /v1/templates lists them")
            versions = tuple(
                int(v)
                for (v,) in conn.execute(
                    sa.select(mt.c.version)
                    .where(mt.c.tenant_id == tenant_id, mt.c.name == name)
                    .order_by(mt.c.version)
                )
            )
        return TemplateVersions(Template.from_row(row), versions)

    def source(self, tenant_id: str, name: str, version: int | None = None) -> tuple[Source, int]:
        found = self.get(tenant_id, name, version).template
        return found.source, found.version

    def list(self, tenant_id: str) -> list[Template]:
        """The active (newest) version of each template, by name."""
        latest = (
            sa.select(mt.c.name, sa.func.max(mt.c.version).label("version"))
            .where(mt.c.tenant_id == tenant_id)
            .group_by(mt.c.name)
            .subquery()
        )
        query = (
            sa.select(mt)
            .join(latest, sa.and_(mt.c.name == latest.c.name, mt.c.version == latest.c.version))
            .where(mt.c.tenant_id == tenant_id)
            .order_by(mt.c.name)
        )
        with db.reader(self.engine) as conn:
            return [Template.from_row(r) for r in conn.execute(query)]

    def delete(self, tenant_id: str, name: str, actor: str) -> None:
        """Remove every version.  Messages already rendered from it are unaffected."""
        with db.write(self.engine) as conn:
            gone = conn.execute(sa.delete(mt).where(mt.c.tenant_id == tenant_id, mt.c.name == name)).rowcount
            if not gone:
                raise NotFound(f"no template {name!r}")
            audit.append(
                conn,
                action=AuditAction.TEMPLATE_DELETED,
                actor=actor,
                tenant_id=tenant_id,
                target=name,
                details={"versions": gone},
            )

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _latest(conn: Connection, tenant_id: str, name: str) -> Any:
        return conn.execute(
            sa.select(mt)
            .where(mt.c.tenant_id == tenant_id, mt.c.name == name)
            .order_by(mt.c.version.desc())
            .limit(1)
        ).first()

    @staticmethod
    def _insert(
        conn: Connection,
        tenant_id: str,
        name: str,
        version: int,
        source: Source,
        actor: str,
        action: AuditAction,
    ) -> Template:
        now = datetime.now(UTC)
        conn.execute(
            sa.insert(mt).values(
                id=new_id("tpl"),
                tenant_id=tenant_id,
                name=name,
                version=version,
                subject=source.subject,
                html=source.html,
                text=source.text,
                created_at=now,
                created_by=actor,
            )
        )
        audit.append(
            conn, action=action, actor=actor, tenant_id=tenant_id, target=name, details={"version": version}
        )
        return Template(name, version, source.subject, source.html, source.text, now, actor)
