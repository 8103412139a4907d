"""Typed contact attributes, declared per tenant with a PHI class, and who may see which class.

An attribute is declared once (name, type, PHI class, choices for ``choice``); every value
written later is checked and coerced against it, so a segment compares numbers as numbers
and dates as dates.  Names are identifiers (``^[a-z][a-z0-9_]{0,39}$``): they are the only
part of a segment that reaches a JSON lookup, and even then as a bound parameter.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.display_text import control_problem
from sealmail.domain.marketing import PhiClass
from sealmail.errors import Conflict, ValidationFailed
from sealmail.ids import new_id
from sealmail.marketing.tables import mkt_attributes
from sealmail.store import db

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_ATTRIBUTES = 100
MAX_CHOICES = 100
MAX_TEXT = 500
# Columns of a contact itself: an attribute may not shadow them in CSV files.
RESERVED = frozenset({"email", "phone", "tz", "status", "id", "created_at", "updated_at"})


class AttrType(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    BOOLEAN = "boolean"
    CHOICE = "choice"


@dataclass(frozen=True, slots=True)
class AttributeDef:
    name: str
    type: AttrType
    phi_class: PhiClass
    choices: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": str(self.type),
            "phi_class": str(self.phi_class),
            "choices": list(self.choices) or None,
        }


# -- who sees which PHI class ------------------------------------------------------------------
ALL_CLASSES: frozenset[PhiClass] = frozenset(PhiClass)
BASIC_CLASSES: frozenset[PhiClass] = frozenset({PhiClass.NONE, PhiClass.DEMOGRAPHIC})


def classes_for_scopes(scopes: frozenset[str]) -> frozenset[PhiClass]:
    """An API key's view: ``admin`` keys see every class, others demographics at most."""
    return ALL_CLASSES if "admin" in scopes else BASIC_CLASSES


# -- values ------------------------------------------------------------------------------------
_TRUE = frozenset({"true", "yes", "1", "y"})
_FALSE = frozenset({"false", "no", "0", "n"})
_INF = float("inf")


Coercer = Callable[[Any], Any]


def coerce(d: AttributeDef, raw: Any) -> Any:
    """The stored form of one value, or ValueError saying what is wrong (never echoing it)."""
    return coercer(d)(raw)


@lru_cache(maxsize=1024)
def coercer(d: AttributeDef) -> Coercer:
    """``coerce`` for one declaration, with the type dispatch done once: an import calls it
    for every cell, and the dispatch cost as much as the check."""
    if d.type is AttrType.NUMBER:
        return _number
    if d.type is AttrType.BOOLEAN:
        return _boolean
    if d.type is AttrType.DATE:
        return _date
    if d.type is AttrType.CHOICE:
        choices = frozenset(d.choices)

        def choice(raw: Any) -> str:
            text = _text(raw)
            if text not in choices:
                raise ValueError("is not one of the declared choices")
            return text

        return choice
    return _text


def _number(raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise ValueError("must be a number")
    try:
        value = float(raw)
    except OverflowError:
        # An integer past a double's range (10**400 in JSON) cannot be stored or compared.
        raise ValueError("must be a finite number") from None
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None
    if value != value or value in (_INF, -_INF):
        raise ValueError("must be a finite number")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("must be true or false")


def _date(raw: Any) -> str:
    try:
        return date.fromisoformat(str(raw).strip()).isoformat()
    except ValueError:
        raise ValueError("must be a date, YYYY-MM-DD") from None


def _text(raw: Any) -> str:
    text = (raw if type(raw) is str else str(raw)).strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    if "\x00" in text:
        # PostgreSQL text and jsonb cannot hold NUL: refuse it on both engines alike.
        raise ValueError("must not contain NUL")
    problem = control_problem(text)
    if problem:
        raise ValueError(problem)
    return text


# -- the declarations ----------------------------------------------------------------------------
def _row_def(r: Any) -> AttributeDef:
    return AttributeDef(r.name, AttrType(r.type), PhiClass(r.phi_class), tuple(r.choices or ()))


def load(conn: Connection, tenant_id: str) -> dict[str, AttributeDef]:
    rows = conn.execute(sa.select(mkt_attributes).where(mkt_attributes.c.tenant_id == tenant_id))
    return {r.name: _row_def(r) for r in rows}


class Attributes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def define(
        self,
        tenant_id: str,
        *,
        name: str,
        type_: str,
        phi_class: str,
        choices: list[str] | None,
        actor: str,
    ) -> dict[str, Any]:
        d = _validate(name, type_, phi_class, choices)
        with db.write(self.engine) as conn:
            existing = load(conn, tenant_id)
            if name in existing:
                raise Conflict(f"attribute {name!r} is already declared; declarations do not change type")
            if len(existing) >= MAX_ATTRIBUTES:
                raise ValidationFailed([{"field": "name", "message": f"at most {MAX_ATTRIBUTES} attributes"}])
            attr_id = new_id("mka")
            conn.execute(
                sa.insert(mkt_attributes).values(
                    id=attr_id,
                    tenant_id=tenant_id,
                    name=d.name,
                    type=str(d.type),
                    phi_class=str(d.phi_class),
                    choices=list(d.choices) or None,
                    created_by=actor[:80],
                    created_at=datetime.now(UTC),
                )
            )
            audit.append(
                conn,
                action=AuditAction.MKT_ATTRIBUTE_DEFINED,
                actor=actor,
                tenant_id=tenant_id,
                target=attr_id,
                details=d.as_dict(),
            )
        return d.as_dict()

    def list(self, tenant_id: str) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            defs = load(conn, tenant_id)
        return [defs[n].as_dict() for n in sorted(defs)]

    def defs(self, tenant_id: str) -> dict[str, AttributeDef]:
        with db.reader(self.engine) as conn:
            return load(conn, tenant_id)


def _validate(name: str, type_: str, phi_class: str, choices: list[str] | None) -> AttributeDef:
    errors: list[dict[str, str]] = []
    if not NAME.match(name) or name in RESERVED:
        errors.append(
            {
                "field": "name",
                "message": "use a-z, 0-9 and _ (up to 40, a letter first), not a contact column",
            }
        )
    if type_ not in set(AttrType):
        errors.append({"field": "type", "message": f"use one of {', '.join(AttrType)}"})
    if phi_class not in set(PhiClass):
        errors.append({"field": "phi_class", "message": f"use one of {', '.join(PhiClass)}"})
    picked = tuple(dict.fromkeys(c.strip() for c in choices or () if c.strip()))
    if type_ == AttrType.CHOICE and not (1 <= len(picked) <= MAX_CHOICES):
        errors.append({"field": "choices", "message": f"a choice attribute needs 1–{MAX_CHOICES} choices"})
    if type_ != AttrType.CHOICE and picked:
        errors.append({"field": "choices", "message": "only choice attributes have choices"})
    if any(len(c) > 100 for c in picked):
        errors.append({"field": "choices", "message": "each choice is at most 100 characters"})
    if errors:
        raise ValidationFailed(errors)
    return AttributeDef(name, AttrType(type_), PhiClass(phi_class), picked)
