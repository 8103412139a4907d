"""A hosted form's consent checkbox, written to the consent ledger (issue 17).

The forms feature cannot import marketing (features are siblings), so the composition
root hands ``FormConsent`` to ``FormSubmissions`` as its ``consent`` ledger.  ``record`` runs
inside the submission's own transaction: the grant and the sealed submission are stored
together or not at all.  The submitter becomes a contact by email (created bare when new:
a form never writes attributes into a contact), and the event's source is ``form`` with
the form id, version and the SHA-256 of the statement agreed to as its evidence.

A consenting submission also starts the journeys triggered by that form (``{"type":
"form_submission", "form": <form id>}``) and ends the contact's waits for ``form:<form
id>``, in the same transaction (``journey_events.form_submitted``); the form id comes from
the actor forms records the grant under, ``form:<form id>``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.domain.marketing import Channel, ConsentAction, Purpose
from sealmail.marketing import journey_events
from sealmail.marketing.consent import ConsentChange, record
from sealmail.marketing.contacts import Clean, Contacts, normalize_email
from sealmail.marketing.tables import mkt_contacts as ct


class FormConsent:
    def __init__(self, contacts: Contacts) -> None:
        self.contacts = contacts

    def prepare(self, tenant_id: str) -> None:
        """Before the write transaction: the blind-index key may need a write of its own."""
        self.contacts.blind_key(tenant_id)

    def record(
        self, conn: Connection, tenant_id: str, email: str, purpose: str, evidence: str, actor: str
    ) -> str:
        """Grant ``purpose`` by email for the submitter, in the caller's transaction; the event id."""
        address = normalize_email(email)
        contact_id = conn.execute(
            sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, ct.c.email == address)
        ).scalar()
        if contact_id is None:
            contact_id, _ = self.contacts.write(conn, tenant_id, [Clean(address, None, None, None, {}, {})])[
                0
            ]
        change = ConsentChange(
            contact_id=contact_id,
            purpose=Purpose(purpose),
            channel=Channel.EMAIL,
            action=ConsentAction.GRANT,
            source="form",
            actor=actor,
            evidence=evidence,
        )
        event_id = record(conn, tenant_id, change)
        if actor.startswith("form:"):
            journey_events.form_submitted(conn, tenant_id, contact_id, actor.removeprefix("form:"), actor)
        return event_id
