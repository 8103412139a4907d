"""What the two patient registers share: the unencrypted-by-request register (``plain.py``,
45 CFR 164.524(c)(2)) and the confidential-communication preferences (``preferences.py``,
164.522(b)).

Each keeps one row per patient address at one tenant, whose ``state`` SecureLine reads, and a
register of every step.  Their states are enums here (the stored strings, unchanged); the
address and evidence checks, the tenant-scoped row lookup, the revocation and the standing-rows
read are one piece of code for both, so the two registers cannot drift apart.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.errors import Conflict, InvalidRequest, NotFound
from sealmail.store import db

VIAS = ("portal", "staff")


class PlainState(enum.StrEnum):
    """``plain_requests.state``: a request moves warned → confirmed, and revoked at any time."""

    WARNED = "warned"  # the warning was shown; not yet confirmed
    CONFIRMED = "confirmed"  # SecureLine sends this address plain mail
    REVOKED = "revoked"


class PlainStepKind(enum.StrEnum):
    """``plain_register.kind``: the steps of a request, in the order they happen."""

    REQUESTED = "requested"
    WARNED = "warned"
    CONFIRMED = "confirmed"
    REVOKED = "revoked"


class PreferenceState(enum.StrEnum):
    """``comms_preferences.state``: SecureLine obeys the active rows."""

    ACTIVE = "active"
    REVOKED = "revoked"


class PreferenceStepKind(enum.StrEnum):
    """``comms_preference_register.kind``."""

    RECORDED = "recorded"
    REVOKED = "revoked"


def checked_address(value: str, name: str = "address") -> str:
    """A patient's address as the registers key it (lower-cased addr-spec); 422 when invalid."""
    try:
        return parse_address(value, name).addr_spec.lower()
    except InvalidAddress as exc:
        raise InvalidRequest(f"{name}: {exc.reason}") from exc


def checked_evidence(via: str, evidence: str | None) -> str | None:
    """What staff recorded as evidence: required from staff, at most 1000 characters."""
    if via not in VIAS:
        raise InvalidRequest(f"via must be one of {', '.join(VIAS)}")
    text = (evidence or "").strip()
    if via == "staff" and not text:
        raise InvalidRequest(
            "staff must record the evidence of the patient's request and confirmation "
            "(e.g. 'signed form scanned to chart 2026-12-01')"
        )
    if len(text) > 1000:
        raise InvalidRequest("evidence is at most 1000 characters")
    return text or None


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def row_of(
    conn: Connection, table: sa.Table, tenant_id: str, row_id: str, what: str, lock: bool = False
) -> Any:
    """The register row ``row_id`` of ``tenant_id`` (locked for a change when ``lock``); 404 when
    missing — another tenant's row is indistinguishable from a missing one."""
    query = sa.select(table).where(table.c.id == row_id, table.c.tenant_id == tenant_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"{what} {row_id} not found")
    return row


def revoke_row(
    conn: Connection,
    table: sa.Table,
    tenant_id: str,
    row_id: str,
    what: str,
    revoked: enum.StrEnum,
    now: datetime,
) -> Any:
    """Mark the row ``revoked`` at ``now`` (409 when it already is); the row as it was."""
    row = row_of(conn, table, tenant_id, row_id, what, lock=True)
    if row.state == revoked:
        raise Conflict(f"{what} {row_id} is already revoked")
    conn.execute(sa.update(table).where(table.c.id == row_id).values(state=revoked, revoked_at=now))
    return row


def standing_rows(
    engine: Engine,
    table: sa.Table,
    tenant_id: str,
    state: enum.StrEnum,
    addresses: Sequence[str],
    columns: Sequence[sa.ColumnElement[Any]] = (),
    order: Sequence[sa.ColumnElement[Any]] = (),
) -> Sequence[Any]:
    """The rows of ``tenant_id`` in ``state`` for these addresses (matched lower-cased), in
    ``order`` (by id if none): what SecureLine obeys for a message's recipients."""
    wanted = sorted({a.lower() for a in addresses})
    if not wanted:
        return []
    query = sa.select(*columns) if columns else sa.select(table)
    with db.reader(engine) as conn:
        return conn.execute(
            query.where(
                table.c.tenant_id == tenant_id, table.c.state == state, table.c.address.in_(wanted)
            ).order_by(*(order or [table.c.id]))
        ).all()
