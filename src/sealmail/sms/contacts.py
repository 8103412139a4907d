"""SMS contacts, sending numbers and consent per purpose: what the tenant configures.

A mixin of ``Texting`` (``sms.service``): the same engine and clock, kept apart so the
sending path reads on its own.  A contact's consent is one row per purpose; a keyword
texted by the contact (``Texting.inbound``) writes the same rows with source ``keyword``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.sms import rules
from sealmail.sms.rules import Purpose
from sealmail.sms.tables import sms_consents, sms_contacts, sms_senders, sms_texts
from sealmail.store import db
from sealmail.tenancy.keyring import Keyring

# How a portal notice reaches a recipient: the email notice, the text, or both (issue 17).
NOTICE_CHOICES = ("email", "sms", "both")


def redact(number: str) -> str:
    """What the audit log and logs show of a number: country code and last two digits."""
    return f"{number[:3]}…{number[-2:]}" if len(number) > 6 else "…"


class SmsContacts:
    engine: Engine
    keyring: Keyring
    now: Callable[[], datetime]

    # -- configuration (the API) ----------------------------------------------------------------
    def add_sender(self, tenant_id: str, number: str, actor: str) -> dict[str, Any]:
        number = self._number(number, "number")
        with self.engine.begin() as conn:
            owner = conn.execute(
                sa.select(sms_senders.c.tenant_id).where(sms_senders.c.number == number)
            ).scalar_one_or_none()
            if owner is not None and owner != tenant_id:
                raise ValidationFailed(
                    [{"field": "number", "message": "this number belongs to another tenant"}]
                )
            if owner is None:
                conn.execute(
                    sa.insert(sms_senders).values(number=number, tenant_id=tenant_id, created_at=self.now())
                )
                audit.append(
                    conn,
                    action=AuditAction.SMS_SENDER_ADDED,
                    actor=actor,
                    tenant_id=tenant_id,
                    target=redact(number),
                )
        return {"number": number}

    def put_contact(
        self,
        tenant_id: str,
        number: str,
        *,
        time_zone: str,
        address: str | None,
        notice: str,
        consents: dict[str, bool],
        actor: str,
    ) -> dict[str, Any]:
        """Create or replace a contact; ``consents`` records what the tenant obtained, per purpose."""
        number = self._number(number, "number")
        try:
            rules.zone(time_zone)
        except rules.InvalidNumber as exc:
            raise ValidationFailed([{"field": "time_zone", "message": str(exc)}]) from None
        if notice not in NOTICE_CHOICES:
            raise ValidationFailed([{"field": "notice", "message": "one of email, sms, both"}])
        now = self.now()
        with self.engine.begin() as conn:
            key = (sms_contacts.c.tenant_id == tenant_id) & (sms_contacts.c.number == number)
            values = {
                "address": address.lower() if address else None,
                "time_zone": time_zone,
                "notice": notice,
                "updated_at": now,
            }
            if conn.execute(sa.update(sms_contacts).where(key).values(**values)).rowcount == 0:
                conn.execute(
                    sa.insert(sms_contacts).values(
                        id=new_id("smc"), tenant_id=tenant_id, number=number, **values
                    )
                )
            for purpose, granted in consents.items():
                self._consent(conn, tenant_id, number, Purpose(purpose), granted, "api", now)
            audit.append(
                conn,
                action=AuditAction.SMS_CONTACT_CHANGED,
                actor=actor,
                tenant_id=tenant_id,
                target=redact(number),
                details={"notice": notice, "consents": consents},
            )
        return self.contact(tenant_id, number)

    def contact(self, tenant_id: str, number: str) -> dict[str, Any]:
        number = self._number(number, "number")
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(sms_contacts).where(
                    sms_contacts.c.tenant_id == tenant_id, sms_contacts.c.number == number
                )
            ).first()
            if row is None:
                raise NotFound("no such SMS contact")
            consents = self._consents(conn, tenant_id, number)
        return {
            "number": row.number,
            "address": row.address,
            "time_zone": row.time_zone,
            "notice": row.notice,
            "consents": {str(p): consents.get(p, False) for p in Purpose},
            "updated_at": row.updated_at.isoformat(),
        }

    def check_notices(
        self, tenant_id: str, choices: Mapping[str, str], recipients: Iterable[str]
    ) -> dict[str, str]:
        """The per-recipient notice choices of a message, checked before it is accepted.

        A text needs an SMS contact for the address (its number is E.164 by construction),
        with consent to notices, and a sending number; otherwise the request is refused
        (422) naming the address and what to do — never silently downgraded at intake.
        Returns the choices keyed by lower-cased address.
        """
        wanted = {a.lower() for a in recipients}
        errors: list[dict[str, str]] = []
        out: dict[str, str] = {}
        for address, choice in choices.items():
            field, key = f"notice.{address}", address.lower()
            if key not in wanted:
                errors.append({"field": field, "message": "not a recipient of this message"})
            elif choice not in NOTICE_CHOICES:
                errors.append({"field": field, "message": "one of email, sms, both"})
            elif choice != "email":
                why = self.sms_unready(tenant_id, key)
                if why:
                    errors.append({"field": field, "message": why})
            out[key] = choice
        if errors:
            raise ValidationFailed(errors)
        return out

    def sms_unready(self, tenant_id: str, address: str) -> str:
        """Why a portal notice cannot be texted to ``address`` now ("" when it can)."""
        contact = self.contact_for_address(tenant_id, address)
        if contact is None:
            return "no SMS contact has this address: add one with PUT /v1/sms/contacts/{number}"
        if not self.consented(tenant_id, contact.number, str(Purpose.NOTICE)):
            return "the SMS contact has not consented to notice texts (or texted STOP)"
        with db.reader(self.engine) as conn:
            sender = conn.execute(
                sa.select(sms_senders.c.number).where(sms_senders.c.tenant_id == tenant_id).limit(1)
            ).first()
        if sender is None:
            return "the tenant has no SMS sending number: add one with POST /v1/sms/senders"
        return ""

    def contact_for_address(self, tenant_id: str, address: str) -> Any:
        with db.reader(self.engine) as conn:
            return conn.execute(
                sa.select(sms_contacts).where(
                    sms_contacts.c.tenant_id == tenant_id, sms_contacts.c.address == address.lower()
                )
            ).first()

    def texts(self, tenant_id: str, message_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The delivery trail of texts (no bodies: they are sealed)."""
        c = sms_texts.c
        q = sa.select(
            c.id,
            c.number,
            c.template,
            c.purpose,
            c.message_id,
            c.status,
            c.status_reason,
            c.provider,
            c.provider_message_id,
            c.created_at,
            c.due_at,
            c.updated_at,
        )
        q = q.where(c.tenant_id == tenant_id).order_by(c.id).limit(limit)
        if message_id:
            q = q.where(c.message_id == message_id)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q).mappings().all()
        return [{**r, **{k: r[k].isoformat() for k in ("created_at", "due_at", "updated_at")}} for r in rows]

    def _number(self, value: str, field: str) -> str:
        try:
            return rules.e164(value)
        except rules.InvalidNumber as exc:
            raise ValidationFailed([{"field": field, "message": str(exc)}]) from None

    def _consent(
        self,
        conn: Connection,
        tenant_id: str,
        number: str,
        purpose: Purpose,
        granted: bool,
        source: str,
        now: datetime,
    ) -> None:
        key = (
            (sms_consents.c.tenant_id == tenant_id)
            & (sms_consents.c.number == number)
            & (sms_consents.c.purpose == str(purpose))
        )
        values = {"granted": granted, "source": source, "updated_at": now}
        if conn.execute(sa.update(sms_consents).where(key).values(**values)).rowcount == 0:
            conn.execute(
                sa.insert(sms_consents).values(
                    tenant_id=tenant_id, number=number, purpose=str(purpose), **values
                )
            )

    def _consents(self, conn: Connection, tenant_id: str, number: str) -> dict[Purpose, bool]:
        rows = conn.execute(
            sa.select(sms_consents.c.purpose, sms_consents.c.granted).where(
                sms_consents.c.tenant_id == tenant_id, sms_consents.c.number == number
            )
        ).all()
        return {Purpose(r.purpose): bool(r.granted) for r in rows}

    def consented(self, tenant_id: str, number: str, purpose: str) -> bool:
        with db.reader(self.engine) as conn:
            return self._consents(conn, tenant_id, number).get(Purpose(purpose), False)

    def captured(self, limit: int = 20) -> list[dict[str, Any]]:
        """Texts the development provider kept, newest first, with their bodies (``captured --sms``).

        Only ``capture`` texts are ever opened here: a real provider's texts carry live links.
        """
        c = sms_texts.c
        q = sa.select(sms_texts).where(c.provider == "capture").order_by(c.created_at.desc(), c.id.desc())
        with db.reader(self.engine) as conn:
            rows = conn.execute(q.limit(limit)).all()
        opened = []
        for r in rows:
            text = self.keyring.open(r.tenant_id, r.id, r.key_id, r.wrapped_key, r.content).decode()
            opened.append(
                {
                    "id": r.id,
                    "to": r.number,
                    "from": r.sender,
                    "status": r.status,
                    "created_at": r.created_at.isoformat(),
                    "text": text,
                }
            )
        return opened
