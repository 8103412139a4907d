"""The consent ledger by purpose and channel, and HIPAA marketing authorizations.

Every change is a new ``mkt_consent_events`` row (grant, revoke, authorize, expire) with
its source, an evidence reference and hash, the actor and the time; the service has no
update or delete for that table.  ``mkt_consent_current`` is the projection the claim
gate reads, written in the same transaction as the event, so the two never disagree.
Each event is audited too, which puts it in the hash-chained audit log.

An authorization (45 CFR 164.508(c)) is stored with its core elements, the required
statements, its expiry and, when a third party pays, the remuneration statement
(164.508(a)(3)(ii)); recording it writes an ``authorize`` event for its purpose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.marketing import (
    REQUIRED_STATEMENTS,
    STATE_AFTER,
    Channel,
    ConsentAction,
    ConsentState,
    ContactStatus,
    Purpose,
    authorization_state,
)
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.marketing import keyset
from sealmail.marketing.tables import mkt_authorizations as au
from sealmail.marketing.tables import mkt_consent_current as cur
from sealmail.marketing.tables import mkt_consent_events as ce
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.marketing.tables import mkt_sends
from sealmail.store import db

SOURCES = frozenset(
    {"form", "api", "import", "one_click", "mailto", "stop", "staff", "cli", "system", "preferences"}
)


@dataclass(frozen=True, slots=True)
class ConsentChange:
    contact_id: str
    purpose: Purpose
    channel: Channel
    action: ConsentAction
    source: str
    actor: str
    evidence: str | None = None
    authorization_id: str | None = None
    expires_at: datetime | None = None


def record(conn: Connection, tenant_id: str, change: ConsentChange, now: datetime | None = None) -> str:
    """Append one event and move the current state, in the caller's transaction; its id."""
    now = now or datetime.now(UTC)
    event_id = new_id("cev")
    evidence_hash = hashlib.sha256(change.evidence.encode()).hexdigest() if change.evidence else None
    conn.execute(
        sa.insert(ce).values(
            id=event_id,
            tenant_id=tenant_id,
            contact_id=change.contact_id,
            purpose=str(change.purpose),
            channel=str(change.channel),
            action=str(change.action),
            source=change.source[:20],
            evidence_sha256=evidence_hash,
            evidence=(change.evidence or None) and change.evidence[:500],
            authorization_id=change.authorization_id,
            actor=change.actor[:80],
            at=now,
        )
    )
    state = {
        "tenant_id": tenant_id,
        "state": str(STATE_AFTER[change.action]),
        "authorization_id": change.authorization_id,
        "expires_at": change.expires_at,
        "event_id": event_id,
        "updated_at": now,
    }
    key = (
        cur.c.contact_id == change.contact_id,
        cur.c.purpose == str(change.purpose),
        cur.c.channel == str(change.channel),
    )
    if conn.execute(sa.update(cur).where(*key).values(**state)).rowcount == 0:
        conn.execute(
            sa.insert(cur).values(
                contact_id=change.contact_id,
                purpose=str(change.purpose),
                channel=str(change.channel),
                **state,
            )
        )
    audit.append(
        conn,
        action=AuditAction.MKT_CONSENT_RECORDED,
        actor=change.actor,
        tenant_id=tenant_id,
        target=change.contact_id,
        details={
            "event": event_id,
            "purpose": str(change.purpose),
            "channel": str(change.channel),
            "action": str(change.action),
            "source": change.source,
        },
    )
    return event_id


def _contact(conn: Connection, tenant_id: str, contact_id: str) -> Any:
    row = conn.execute(
        sa.select(ct.c.id, ct.c.status).where(ct.c.tenant_id == tenant_id, ct.c.id == contact_id)
    ).first()
    if row is None:
        raise NotFound(f"no contact {contact_id!r}")
    return row


def unsubscribed(
    conn: Connection, tenant_id: str, address: str, message_id: str, source: str, actor: str
) -> None:
    """The one-click unsubscribe's hook (``engagement.Engagement``): revoke in the ledger.

    A campaign or journey message revokes its own purpose (a fundraising opt-out, or the
    marketing authorization, 164.508(b)(5)); any other broadcast message revokes marketing.
    Runs in the unsubscribe's transaction, beside the suppression it writes.
    """
    sent = conn.execute(
        sa.select(mkt_sends.c.contact_id, mkt_sends.c.purpose, mkt_sends.c.channel).where(
            mkt_sends.c.message_id == message_id, mkt_sends.c.tenant_id == tenant_id
        )
    ).first()
    if sent is not None:
        contact_id, purpose, channel = sent.contact_id, Purpose(sent.purpose), Channel(sent.channel)
    else:
        contact_id = conn.execute(
            sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, ct.c.email == address.strip().lower())
        ).scalar()
        purpose, channel = Purpose.MARKETING, Channel.EMAIL
    if contact_id is None:
        return
    change = ConsentChange(
        contact_id, purpose, channel, ConsentAction.REVOKE, source, actor, f"message {message_id}"
    )
    record(conn, tenant_id, change)
    if purpose is Purpose.MARKETING:
        conn.execute(
            sa.update(au)
            .where(au.c.tenant_id == tenant_id, au.c.contact_id == contact_id, au.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )


class Consent:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def change(
        self,
        tenant_id: str,
        contact_id: str,
        *,
        purpose: str,
        channel: str,
        action: str,
        source: str,
        actor: str,
        evidence: str | None = None,
    ) -> dict[str, Any]:
        """Grant or revoke (``authorize`` comes with an authorization; ``expire`` from the sweep)."""
        p, c, a = _parse(purpose, channel, action, source)
        if a not in (ConsentAction.GRANT, ConsentAction.REVOKE):
            raise ValidationFailed(
                [{"field": "action", "message": "use grant or revoke; authorizations go to /authorizations"}]
            )
        with db.write(self.engine) as conn:
            _contact(conn, tenant_id, contact_id)
            record(conn, tenant_id, ConsentChange(contact_id, p, c, a, source, actor, evidence))
            if a is ConsentAction.REVOKE and p is Purpose.MARKETING:
                conn.execute(
                    sa.update(au)
                    .where(
                        au.c.tenant_id == tenant_id, au.c.contact_id == contact_id, au.c.revoked_at.is_(None)
                    )
                    .values(revoked_at=datetime.now(UTC))
                )
        return self.current(tenant_id, contact_id)

    def authorize(
        self, tenant_id: str, contact_id: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Store a signed authorization and write its ``authorize`` event."""
        now = datetime.now(UTC)
        values = _authorization(body, now)
        auth_id = new_id("aut")
        with db.write(self.engine) as conn:
            contact = _contact(conn, tenant_id, contact_id)
            if contact.status == ContactStatus.ARCHIVED:
                raise ValidationFailed([{"field": "contact", "message": "is archived"}])
            conn.execute(
                sa.insert(au).values(
                    id=auth_id,
                    tenant_id=tenant_id,
                    contact_id=contact_id,
                    created_by=actor[:80],
                    created_at=now,
                    **values,
                )
            )
            change = ConsentChange(
                contact_id,
                Purpose(values["purpose"]),
                Channel.EMAIL,
                ConsentAction.AUTHORIZE,
                body.get("source", "form"),
                actor,
                f"document sha256 {values['document_sha256']}",
                auth_id,
                values["expires_at"],
            )
            record(conn, tenant_id, change, now)
            audit.append(
                conn,
                action=AuditAction.MKT_AUTHORIZATION_RECORDED,
                actor=actor,
                tenant_id=tenant_id,
                target=auth_id,
                details={
                    "contact": contact_id,
                    "purpose": values["purpose"],
                    "remuneration": values["remuneration"],
                },
            )
        return {"id": auth_id, "contact_id": contact_id, **_public(values)}

    def expire_due(self, now: datetime | None = None) -> int:
        """Write ``expire`` events for authorizations whose date passed (the claim gate
        refuses them already; this makes the ledger say so too)."""
        now = now or datetime.now(UTC)
        with db.write(self.engine) as conn:
            due = conn.execute(
                sa.select(
                    cur.c.tenant_id, cur.c.contact_id, cur.c.purpose, cur.c.channel, cur.c.authorization_id
                ).where(cur.c.state == ConsentState.AUTHORIZED, cur.c.expires_at <= now)
            ).all()
            for r in due:
                change = ConsentChange(
                    r.contact_id,
                    Purpose(r.purpose),
                    Channel(r.channel),
                    ConsentAction.EXPIRE,
                    "system",
                    "system",
                    None,
                    r.authorization_id,
                )
                record(conn, r.tenant_id, change, now)
        return len(due)

    def current(self, tenant_id: str, contact_id: str) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            _contact(conn, tenant_id, contact_id)
            rows = conn.execute(
                sa.select(cur)
                .where(cur.c.tenant_id == tenant_id, cur.c.contact_id == contact_id)
                .order_by(cur.c.purpose, cur.c.channel)
            ).all()
        return {
            "contact_id": contact_id,
            "consents": [
                {
                    "purpose": r.purpose,
                    "channel": r.channel,
                    "state": r.state,
                    "authorization_id": r.authorization_id,
                    "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                    "updated_at": r.updated_at.isoformat(),
                }
                for r in rows
            ],
        }

    def authorizations(
        self, tenant_id: str, contact_id: str, *, actor: str, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Every stored authorization of the contact, newest first, with each element and
        its state now.  Audited like a reveal, in the same transaction as the read: the
        ids shown, never their text (the elements name what PHI is disclosed)."""
        now = now or datetime.now(UTC)
        with db.write(self.engine) as conn:
            _contact(conn, tenant_id, contact_id)
            rows = conn.execute(
                sa.select(au)
                .where(au.c.tenant_id == tenant_id, au.c.contact_id == contact_id)
                .order_by(au.c.created_at.desc(), au.c.id.desc())
            ).all()
            audit.append(
                conn,
                action=AuditAction.MKT_AUTHORIZATIONS_READ,
                actor=actor,
                tenant_id=tenant_id,
                target=contact_id,
                details={"authorizations": [r.id for r in rows]},
            )
        return [_stored(r, now) for r in rows]

    def history(self, tenant_id: str, contact_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The newest ``limit`` ledger events, oldest first (the latest change is never cut off)."""
        events: list[dict[str, Any]] = self.history_page(tenant_id, contact_id, limit=limit)["history"]
        return events

    def ledger(self, tenant_id: str, contact_id: str, *, page: int = 1000) -> list[dict[str, Any]]:
        """The whole ledger, oldest first, read ``page`` events a query (the CLI shows it all)."""
        pages: list[list[dict[str, Any]]] = []
        cursor = ""
        while True:
            got = self.history_page(tenant_id, contact_id, limit=page, cursor=cursor)
            pages.append(got["history"])
            if not (cursor := got["next_cursor"]):
                return [event for older in reversed(pages) for event in older]

    def history_page(
        self, tenant_id: str, contact_id: str, *, limit: int = 200, cursor: str = ""
    ) -> dict[str, Any]:
        """A page of the ledger walking back in time: the ``limit`` events just before the
        event ``cursor`` names (the newest when there is none), oldest first as before, and
        ``next_cursor`` to the page of older events (None once the first event is shown).
        Keyed on (at, id): unique, and ``ix_mkt_consent_events_contact`` serves it."""
        key = [ce.c.at, ce.c.id]
        scope = (ce.c.tenant_id == tenant_id, ce.c.contact_id == contact_id)
        query = sa.select(ce).where(*scope)
        with db.reader(self.engine) as conn:
            if cursor:
                query = query.where(
                    keyset.beyond(key, keyset.cursor_key(conn, ce, cursor, key, *scope), descending=True)
                )
            rows = conn.execute(query.order_by(ce.c.at.desc(), ce.c.id.desc()).limit(limit + 1)).all()
        page, older = keyset.split(rows, limit)
        return {"history": [_event(r) for r in reversed(page)], "next_cursor": older}


def _event(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "purpose": r.purpose,
        "channel": r.channel,
        "action": r.action,
        "source": r.source,
        "evidence": r.evidence,
        "evidence_sha256": r.evidence_sha256,
        "authorization_id": r.authorization_id,
        "actor": r.actor,
        "at": r.at.isoformat(),
    }


def _parse(purpose: str, channel: str, action: str, source: str) -> tuple[Purpose, Channel, ConsentAction]:
    errors = []
    if purpose not in set(Purpose):
        errors.append({"field": "purpose", "message": f"use one of {', '.join(Purpose)}"})
    if channel not in set(Channel):
        errors.append({"field": "channel", "message": f"use one of {', '.join(Channel)}"})
    if action not in set(ConsentAction):
        errors.append({"field": "action", "message": f"use one of {', '.join(ConsentAction)}"})
    if source not in SOURCES:
        errors.append({"field": "source", "message": f"use one of {', '.join(sorted(SOURCES))}"})
    if errors:
        raise ValidationFailed(errors)
    return Purpose(purpose), Channel(channel), ConsentAction(action)


_ELEMENTS = ("information", "disclosed_by", "disclosed_to", "purpose_statement", "signed_by")


def _authorization(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The 164.508(c) checks: every core element, the statements, a future expiry, and a
    remuneration statement when a third party pays."""
    errors: list[dict[str, str]] = []
    purpose = body.get("purpose", "marketing")
    if purpose not in (Purpose.MARKETING, Purpose.FUNDRAISING):
        errors.append({"field": "purpose", "message": "authorizations are for marketing or fundraising"})
    for name in _ELEMENTS:
        if not str(body.get(name) or "").strip():
            errors.append({"field": name, "message": "is a required element (45 CFR 164.508(c)(1))"})
    statements = sorted(set(body.get("statements") or ()))
    missing = [s for s in REQUIRED_STATEMENTS if s not in statements]
    if missing:
        errors.append({"field": "statements", "message": f"missing {', '.join(missing)} (164.508(c)(2))"})
    expires_at = body.get("expires_at")
    signed_at = body.get("signed_at") or now
    if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
        errors.append({"field": "expires_at", "message": "is required, with a timezone offset"})
    elif expires_at <= now:
        errors.append({"field": "expires_at", "message": "is in the past"})
    if not isinstance(signed_at, datetime) or signed_at.tzinfo is None or signed_at > now:
        errors.append({"field": "signed_at", "message": "must be a past time with a timezone offset"})
    remuneration = bool(body.get("remuneration"))
    statement = str(body.get("remuneration_statement") or "").strip() or None
    if remuneration and statement is None:
        errors.append(
            {"field": "remuneration_statement", "message": "must state the remuneration (164.508(a)(3)(ii))"}
        )
    digest = str(body.get("document_sha256") or "").lower()
    if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
        errors.append({"field": "document_sha256", "message": "the SHA-256 (hex) of the signed document"})
    if errors:
        raise ValidationFailed(errors)
    return {
        "purpose": purpose,
        **{name: str(body[name]).strip()[:1000] for name in _ELEMENTS},
        "statements": statements,
        "expires_at": expires_at,
        "signed_at": signed_at,
        "remuneration": remuneration,
        "remuneration_statement": statement,
        "document_sha256": digest,
    }


def _public(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}


def _stored(r: Any, now: datetime) -> dict[str, Any]:
    state = authorization_state(r.revoked_at, r.expires_at, now)
    values = {c.name: getattr(r, c.name) for c in au.c if c.name != "tenant_id"}
    return {**_public(values), "statements": list(r.statements), "state": str(state)}
