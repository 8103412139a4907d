"""The confidential-communication preferences register (45 CFR 164.522(b)).

A patient may ask a covered entity to reach them only by other means or at another place,
and the entity must accommodate a reasonable request: "only through the portal", "no e-mail
to this address — use this other one", "never text me".  Each preference is a row for one
address at one tenant, ``active`` until revoked by the patient or staff; every step is a row
of the register (who, when, how, what staff recorded as evidence) and an audit entry, like
the unencrypted-by-request register next door (``plain.py``).

SecureLine reads the active preferences (``standing``) for the tenant of the message and the
exact address, folded into one ``CommsPreference`` fact that the pure decision obeys: a
preference at one tenant binds nothing at another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.secureline import CommsPreference, PreferenceKind
from sealmail.errors import Conflict, InvalidRequest
from sealmail.evidence.registers import (
    PreferenceState,
    PreferenceStepKind,
    checked_address,
    checked_evidence,
    iso,
    revoke_row,
    row_of,
    standing_rows,
)
from sealmail.evidence.tables import comms_preference_register, comms_preferences
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.address_sets import AddressSet

KINDS = tuple(str(k) for k in PreferenceKind)
# What each kind means, in the words the register, the console and the portal show.
MEANINGS = {
    PreferenceKind.PORTAL_ONLY: "only through the secure portal",
    PreferenceKind.REDIRECT: "no e-mail to this address; use the alternative address",
    PreferenceKind.NO_SMS: "no text messages",
}
_WHAT = "communication preference"


@dataclass(frozen=True, slots=True)
class PreferenceStep:
    kind: PreferenceStepKind
    at: str
    actor: str
    via: str  # portal | staff
    evidence: str | None


@dataclass(frozen=True, slots=True)
class Preference:
    id: str
    address: str
    kind: str
    alternative: str | None
    state: PreferenceState
    recorded_at: str
    revoked_at: str | None
    meaning: str
    steps: tuple[PreferenceStep, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def _kind(kind: str, address: str, alternative: str | None) -> tuple[PreferenceKind, str | None]:
    if kind not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
    parsed = PreferenceKind(kind)
    if parsed is not PreferenceKind.REDIRECT:
        if alternative:
            raise InvalidRequest("only a redirect names an alternative address")
        return parsed, None
    if not alternative:
        raise InvalidRequest("a redirect needs the alternative address the patient gave")
    other = checked_address(alternative, "alternative")
    if other == address:
        raise InvalidRequest("the alternative address must differ from the patient's address")
    return parsed, other


# How long another process's new preference may go unseen for an address that had none
# (store/address_sets.py; a standing preference is always read from the database).
PREFERENCE_ADDRESSES_SECONDS = 1.0


class PreferenceRegister:
    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        seconds = PREFERENCE_ADDRESSES_SECONDS
        self.addresses = AddressSet(engine, comms_preferences, seconds, clock, state=PreferenceState.ACTIVE)

    def record(
        self,
        tenant_id: str,
        address: str,
        kind: str,
        actor: str,
        via: str,
        evidence: str | None = None,
        alternative: str | None = None,
    ) -> Preference:
        """Record a preference; staff must say what the evidence is (409 while one of the same
        kind stands for the address)."""
        recorded = checked_evidence(via, evidence)
        address = checked_address(address)
        parsed, other = _kind(kind, address, alternative)
        with self.engine.begin() as conn:
            standing = conn.execute(
                sa.select(comms_preferences.c.id).where(
                    comms_preferences.c.tenant_id == tenant_id,
                    comms_preferences.c.address == address,
                    comms_preferences.c.kind == str(parsed),
                    comms_preferences.c.state == PreferenceState.ACTIVE,
                )
            ).scalar()
            if standing is not None:
                raise Conflict(f"{address} already has a {parsed} preference ({standing}); revoke it first")
            preference_id = new_id("cmp")
            now = _now()
            conn.execute(
                sa.insert(comms_preferences).values(
                    id=preference_id,
                    tenant_id=tenant_id,
                    address=address,
                    kind=str(parsed),
                    alternative=other,
                    state=PreferenceState.ACTIVE,
                    recorded_at=now,
                )
            )
            details = {"address": address, "kind": str(parsed), "alternative": other}
            _step(
                conn,
                tenant_id,
                preference_id,
                PreferenceStepKind.RECORDED,
                actor,
                via,
                now,
                recorded,
                details,
            )
        self.addresses.drop(tenant_id)
        return self.get(tenant_id, preference_id)

    def revoke(
        self, tenant_id: str, preference_id: str, actor: str, via: str, reason: str = ""
    ) -> Preference:
        """Revoke: SecureLine stops applying the preference at once."""
        checked_evidence(via, "-")
        with self.engine.begin() as conn:
            now = _now()
            row = revoke_row(
                conn, comms_preferences, tenant_id, preference_id, _WHAT, PreferenceState.REVOKED, now
            )
            note = reason.strip()[:1000] or None
            kind = PreferenceStepKind.REVOKED
            _step(conn, tenant_id, preference_id, kind, actor, via, now, note, {"address": row.address})
        self.addresses.drop(tenant_id)
        return self.get(tenant_id, preference_id)

    # -- reading ----------------------------------------------------------------------------------------
    def standing(self, tenant_id: str, addresses: Sequence[str]) -> dict[str, CommsPreference]:
        """Active preferences of ``tenant_id`` for these addresses, one fact each (lower-cased keys)."""
        wanted = sorted({a.lower() for a in addresses})
        if not wanted or self.addresses.none_of(tenant_id, wanted):
            return {}
        c = comms_preferences.c
        order = (c.recorded_at, c.id)  # a later redirect wins
        rows = standing_rows(
            self.engine, comms_preferences, tenant_id, PreferenceState.ACTIVE, addresses, order=order
        )
        found: dict[str, CommsPreference] = {}
        for r in rows:
            was = found.get(r.address) or CommsPreference(())
            kind = PreferenceKind(r.kind)
            found[r.address] = CommsPreference(
                (*was.ids, r.id),
                portal_only=was.portal_only or kind is PreferenceKind.PORTAL_ONLY,
                redirect_to=r.alternative if kind is PreferenceKind.REDIRECT else was.redirect_to,
                no_sms=was.no_sms or kind is PreferenceKind.NO_SMS,
            )
        return found

    def cached_none_of(self, tenant_id: str, addresses: Iterable[str]) -> bool:
        """True when the cached address set shows none of ``addresses`` is on record (no I/O)."""
        return self.addresses.cached_none_of(tenant_id, (a.lower() for a in addresses))

    def refuses_sms(self, tenant_id: str, address: str) -> bool:
        """Whether the patient at ``address`` asked ``tenant_id`` for no text messages (the SMS port asks)."""
        found = self.standing(tenant_id, [address]).get(address.lower())
        return found is not None and found.no_sms

    def get(self, tenant_id: str, preference_id: str) -> Preference:
        with db.reader(self.engine) as conn:
            row = row_of(conn, comms_preferences, tenant_id, preference_id, _WHAT)
            steps = conn.execute(
                sa.select(comms_preference_register)
                .where(comms_preference_register.c.preference_id == preference_id)
                .order_by(comms_preference_register.c.at, comms_preference_register.c.kind)
            ).all()
        return Preference(
            id=row.id,
            address=row.address,
            kind=row.kind,
            alternative=row.alternative,
            state=PreferenceState(row.state),
            recorded_at=iso(row.recorded_at) or "",
            revoked_at=iso(row.revoked_at),
            meaning=MEANINGS[PreferenceKind(row.kind)],
            steps=tuple(
                PreferenceStep(PreferenceStepKind(s.kind), iso(s.at) or "", s.actor, s.via, s.evidence)
                for s in steps
            ),
        )

    def preferences(
        self, tenant_id: str, address: str | None = None, active_only: bool = False
    ) -> list[Preference]:
        query = sa.select(comms_preferences.c.id).where(comms_preferences.c.tenant_id == tenant_id)
        if address:
            query = query.where(comms_preferences.c.address == address.strip().lower())
        if active_only:
            query = query.where(comms_preferences.c.state == PreferenceState.ACTIVE)
        with db.reader(self.engine) as conn:
            ids = list(
                conn.execute(
                    query.order_by(comms_preferences.c.recorded_at, comms_preferences.c.id)
                ).scalars()
            )
        return [self.get(tenant_id, i) for i in ids]

    def register_rows(self, tenant_id: str, since: datetime, until: datetime) -> list[tuple[str, ...]]:
        """Every step in the period: at, preference, address, kind, alternative, step, via, actor,
        evidence."""
        c, r = comms_preferences.c, comms_preference_register.c
        query = (
            sa.select(comms_preference_register, c.address, c.kind.label("pref_kind"), c.alternative)
            .join(comms_preferences, c.id == r.preference_id)
            .where(r.tenant_id == tenant_id, r.at >= since, r.at < until)
            .order_by(r.at, r.preference_id, r.kind)
        )
        with db.reader(self.engine) as conn:
            return [
                (
                    iso(x.at) or "",
                    x.preference_id,
                    x.address,
                    x.pref_kind,
                    x.alternative or "",
                    x.kind,
                    x.via,
                    x.actor,
                    x.evidence or "",
                )
                for x in conn.execute(query)
            ]


def _step(
    conn: Connection,
    tenant_id: str,
    preference_id: str,
    kind: PreferenceStepKind,
    actor: str,
    via: str,
    at: datetime,
    evidence: str | None,
    details: dict[str, Any],
) -> None:
    conn.execute(
        sa.insert(comms_preference_register).values(
            id=new_id("cpr"),
            tenant_id=tenant_id,
            preference_id=preference_id,
            kind=kind,
            at=at,
            actor=actor[:80],
            via=via,
            evidence=evidence,
        )
    )
    action = (
        AuditAction.COMMS_PREFERENCE_RECORDED
        if kind is PreferenceStepKind.RECORDED
        else AuditAction.COMMS_PREFERENCE_REVOKED
    )
    extra = {k: v for k, v in details.items() if v}
    audit.append(
        conn,
        action=action,
        actor=actor,
        tenant_id=tenant_id,
        target=preference_id,
        details={"via": via, **extra, **({"evidence": evidence} if evidence else {})},
    )
