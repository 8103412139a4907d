"""The unencrypted-by-request register (45 CFR 164.524(c)(2), HHS right-of-access guidance).

A patient may ask to get their PHI by ordinary, unencrypted e-mail.  The covered entity
gives a brief warning that a third party could read it in transit, asks the patient to
confirm, and — once confirmed — must send it that way.  Here each request is a row for one
address at one tenant, moving ``requested → warned → confirmed``, and ``revoked`` at any
time by the patient or staff; every step is a row of the register (who, when, how, the
digest of the exact warning shown, what staff recorded as evidence) and an audit entry.

SecureLine reads only confirmed, unrevoked requests (``confirmed``), for the tenant of the
message and the exact address the patient confirmed from: a request at one tenant never
opens plain mail at another, and a look-alike address gets nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.secureline import PlainConsent
from sealmail.errors import Conflict
from sealmail.evidence.registers import (
    PlainState,
    PlainStepKind,
    checked_evidence,
    iso,
    revoke_row,
    row_of,
    standing_rows,
)
from sealmail.evidence.registers import checked_address as checked_address
from sealmail.evidence.tables import plain_register, plain_requests
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.address_sets import AddressSet

# What the patient is shown before confirming; its SHA-256 is kept with each "warned" step,
# so the register proves which words the patient saw.
WARNING = (
    "You asked us to send your health information by regular e-mail without encryption. "
    "Unencrypted e-mail can be read or changed by others while it travels across the internet "
    "and in mailboxes it passes through, and we cannot take it back once it is sent. "
    "We can instead send it through our secure message portal at no cost to you. "
    "If you still want unencrypted e-mail, confirm below; you can withdraw this at any time."
)
WARNING_SHA256 = hashlib.sha256(WARNING.encode()).hexdigest()
_STEP_ACTION = {
    PlainStepKind.REQUESTED: AuditAction.PLAIN_REQUESTED,
    PlainStepKind.WARNED: AuditAction.PLAIN_WARNED,
    PlainStepKind.CONFIRMED: AuditAction.PLAIN_CONFIRMED,
    PlainStepKind.REVOKED: AuditAction.PLAIN_REVOKED,
}
_WHAT = "plain-mail request"


@dataclass(frozen=True, slots=True)
class PlainStep:
    """One step of a request in the register."""

    kind: PlainStepKind
    at: datetime
    actor: str
    via: str  # portal | staff
    evidence: str | None
    warning_sha256: str | None  # on "warned": the digest of the warning shown


@dataclass(frozen=True, slots=True)
class PlainRequest:
    """A patient's request for unencrypted mail to one address, with its steps in order."""

    id: str
    address: str
    state: PlainState
    requested_at: datetime
    confirmed_at: datetime | None
    revoked_at: datetime | None
    steps: tuple[PlainStep, ...]


def _now() -> datetime:
    return datetime.now(UTC)


# How long another process's new confirmation may go unseen for an address that had none
# (store/address_sets.py): only ever delays plain mail, never sends it without a request.
CONFIRMED_ADDRESSES_SECONDS = 2.0


class PlainRegister:
    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        seconds = CONFIRMED_ADDRESSES_SECONDS
        self.addresses = AddressSet(engine, plain_requests, seconds, clock, state=PlainState.CONFIRMED)

    # -- the patient's path (the portal): request, see the warning, confirm -------------------------
    def request(self, tenant_id: str, address: str, actor: str, via: str) -> PlainRequest:
        """Open a request and record that the warning was shown (one step in the portal)."""
        address = checked_address(address)
        self._via(via)
        with self.engine.begin() as conn:
            if self._standing(conn, tenant_id, address) is not None:
                raise Conflict(f"{address} already has a plain-mail request; revoke it first")
            request_id = new_id("pln")
            now = _now()
            conn.execute(
                sa.insert(plain_requests).values(
                    id=request_id,
                    tenant_id=tenant_id,
                    address=address,
                    state=PlainState.WARNED,
                    requested_at=now,
                )
            )
            self._step(conn, tenant_id, request_id, PlainStepKind.REQUESTED, actor, via, now, address=address)
            self._step(conn, tenant_id, request_id, PlainStepKind.WARNED, actor, via, now, warning=True)
        return self.get(tenant_id, request_id)

    def confirm(
        self, tenant_id: str, request_id: str, actor: str, via: str, evidence: str | None = None
    ) -> PlainRequest:
        """Confirm after the warning; staff must say what the evidence is."""
        self._via(via)
        recorded = self._evidence(via, evidence)
        with self.engine.begin() as conn:
            row = row_of(conn, plain_requests, tenant_id, request_id, _WHAT, lock=True)
            if row.state != PlainState.WARNED:
                raise Conflict(f"request {request_id} is {row.state}: only a warned request can be confirmed")
            now = _now()
            conn.execute(
                sa.update(plain_requests)
                .where(plain_requests.c.id == request_id)
                .values(state=PlainState.CONFIRMED, confirmed_at=now)
            )
            self._step(
                conn, tenant_id, request_id, PlainStepKind.CONFIRMED, actor, via, now, evidence=recorded
            )
        self.addresses.drop(tenant_id)
        return self.get(tenant_id, request_id)

    # -- staff recording a request made on paper or by phone ------------------------------------------
    def record(self, tenant_id: str, address: str, evidence: str, actor: str) -> PlainRequest:
        """Staff record the whole exchange at once: request, warning given, confirmation, with evidence."""
        self._evidence("staff", evidence)  # refused before anything is stored
        request = self.request(tenant_id, address, actor, "staff")
        return self.confirm(tenant_id, request.id, actor, "staff", evidence)

    def revoke(self, tenant_id: str, request_id: str, actor: str, via: str, reason: str = "") -> PlainRequest:
        self._via(via)
        with self.engine.begin() as conn:
            now = _now()
            revoke_row(conn, plain_requests, tenant_id, request_id, _WHAT, PlainState.REVOKED, now)
            note = reason.strip()[:1000] or None
            self._step(conn, tenant_id, request_id, PlainStepKind.REVOKED, actor, via, now, evidence=note)
        self.addresses.drop(tenant_id)
        return self.get(tenant_id, request_id)

    # -- reading ----------------------------------------------------------------------------------------
    def confirmed(self, tenant_id: str, addresses: Sequence[str]) -> dict[str, PlainConsent]:
        """Standing confirmed requests of ``tenant_id`` for these addresses (lower-cased keys)."""
        wanted = sorted({a.lower() for a in addresses})
        if not wanted or self.addresses.none_of(tenant_id, wanted):
            return {}
        c = plain_requests.c
        rows = standing_rows(
            self.engine,
            plain_requests,
            tenant_id,
            PlainState.CONFIRMED,
            addresses,
            (c.id, c.address, c.confirmed_at),
        )
        if not rows:
            return {}
        # The register is append-only: a confirmed request's confirming step never changes.
        with db.reader(self.engine) as conn:
            vias = dict(
                conn.execute(
                    sa.select(plain_register.c.request_id, plain_register.c.via).where(
                        plain_register.c.request_id.in_([r.id for r in rows]),
                        plain_register.c.kind == PlainStepKind.CONFIRMED,
                    )
                ).all()
            )
        return {
            r.address: PlainConsent(
                r.id, r.confirmed_at.isoformat(timespec="seconds"), str(vias.get(r.id, ""))
            )
            for r in rows
        }

    def cached_none_of(self, tenant_id: str, addresses: Iterable[str]) -> bool:
        """True when the cached address set shows none of ``addresses`` is on record (no I/O)."""
        return self.addresses.cached_none_of(tenant_id, (a.lower() for a in addresses))

    def get(self, tenant_id: str, request_id: str) -> PlainRequest:
        with db.reader(self.engine) as conn:
            row = row_of(conn, plain_requests, tenant_id, request_id, _WHAT)
            steps = conn.execute(
                sa.select(plain_register)
                .where(plain_register.c.request_id == request_id)
                .order_by(plain_register.c.seq)
            ).all()
        return PlainRequest(
            id=row.id,
            address=row.address,
            state=PlainState(row.state),
            requested_at=_second(row.requested_at),
            confirmed_at=_second(row.confirmed_at) if row.confirmed_at else None,
            revoked_at=_second(row.revoked_at) if row.revoked_at else None,
            steps=tuple(
                PlainStep(PlainStepKind(s.kind), _second(s.at), s.actor, s.via, s.evidence, s.warning_sha256)
                for s in steps
            ),
        )

    def requests(self, tenant_id: str, address: str | None = None) -> list[PlainRequest]:
        query = sa.select(plain_requests.c.id).where(plain_requests.c.tenant_id == tenant_id)
        if address:
            query = query.where(plain_requests.c.address == address.lower())
        with db.reader(self.engine) as conn:
            ids = list(conn.execute(query.order_by(plain_requests.c.requested_at)).scalars())
        return [self.get(tenant_id, i) for i in ids]

    def register_rows(self, tenant_id: str, since: datetime, until: datetime) -> list[tuple[str, ...]]:
        """Every step in the period: at, request, address, step, via, actor, warning digest, evidence."""
        query = (
            sa.select(plain_register, plain_requests.c.address)
            .join(plain_requests, plain_requests.c.id == plain_register.c.request_id)
            .where(
                plain_register.c.tenant_id == tenant_id,
                plain_register.c.at >= since,
                plain_register.c.at < until,
            )
            .order_by(plain_register.c.at, plain_register.c.request_id, plain_register.c.seq)
        )
        with db.reader(self.engine) as conn:
            return [
                (
                    iso(r.at) or "",
                    r.request_id,
                    r.address,
                    r.kind,
                    r.via,
                    r.actor,
                    r.warning_sha256 or "",
                    r.evidence or "",
                )
                for r in conn.execute(query)
            ]

    # -- internals ----------------------------------------------------------------------------------------
    @staticmethod
    def _via(via: str) -> None:
        checked_evidence(via, "-")

    @staticmethod
    def _evidence(via: str, evidence: str | None) -> str | None:
        return checked_evidence(via, evidence)

    @staticmethod
    def _standing(conn: Connection, tenant_id: str, address: str) -> str | None:
        return conn.execute(
            sa.select(plain_requests.c.id).where(
                plain_requests.c.tenant_id == tenant_id,
                plain_requests.c.address == address,
                plain_requests.c.state != PlainState.REVOKED,
            )
        ).scalar()

    @staticmethod
    def _step(
        conn: Connection,
        tenant_id: str,
        request_id: str,
        kind: PlainStepKind,
        actor: str,
        via: str,
        at: datetime,
        *,
        evidence: str | None = None,
        warning: bool = False,
        address: str | None = None,
    ) -> None:
        seq = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(plain_register.c.seq), 0)).where(
                plain_register.c.request_id == request_id
            )
        ).scalar_one()
        conn.execute(
            sa.insert(plain_register).values(
                id=new_id("plr"),
                seq=int(seq) + 1,
                tenant_id=tenant_id,
                request_id=request_id,
                kind=kind,
                at=at,
                actor=actor[:80],
                via=via,
                evidence=evidence,
                warning_sha256=WARNING_SHA256 if warning else None,
            )
        )
        details: dict[str, Any] = {"via": via}
        if address:
            details["address"] = address
        if warning:
            details["warning_sha256"] = WARNING_SHA256
        if evidence:
            details["evidence"] = evidence
        audit.append(
            conn,
            action=_STEP_ACTION[kind],
            actor=actor,
            tenant_id=tenant_id,
            target=request_id,
            details=details,
        )


def _second(value: datetime) -> datetime:
    """In UTC, to the second: the register's times as it reports them."""
    return value.astimezone(UTC).replace(microsecond=0)
