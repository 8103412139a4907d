"""Tables of secure texting.

Numbers are routing metadata like addresses (plaintext, indexed).  A text's body holds
a portal link — a capability — so it is sealed like message content; the row keeps the
template name and a digest.  Consent is one row per (tenant, number, purpose), so a
STOP for reminders leaves notices alone and every change has its own time and source.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

sms_senders = sa.Table(
    "sms_senders",
    metadata,
    sa.Column("number", sa.String(16), primary_key=True),  # E.164; inbound texts to it find the tenant
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

sms_contacts = sa.Table(
    "sms_contacts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("number", sa.String(16), nullable=False),
    # The email address whose portal messages this number hears about (lower-cased).
    sa.Column("address", sa.String(320), nullable=True),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("notice", sa.String(10), nullable=False),  # email | sms | both
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "number", name="uq_sms_contacts_tenant_number"),
    sa.Index("ix_sms_contacts_tenant_address", "tenant_id", "address"),
)

sms_consents = sa.Table(
    "sms_consents",
    metadata,
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("number", sa.String(16), primary_key=True),
    sa.Column("purpose", sa.String(20), primary_key=True),  # notice | code | reminder
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),  # api | keyword
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

sms_texts = sa.Table(
    "sms_texts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("number", sa.String(16), nullable=False),
    sa.Column("sender", sa.String(16), nullable=False),
    sa.Column("template", sa.String(20), nullable=False),
    sa.Column("purpose", sa.String(20), nullable=True),  # none for keyword replies
    sa.Column("message_id", ID, nullable=True),  # the portal message it is about
    sa.Column("recipient_id", ID, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("status_reason", sa.String(200), nullable=True),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("provider_message_id", sa.String(65), nullable=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("key_id", ID, nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_sms_texts_provider_id", "provider", "provider_message_id"),
    sa.Index("ix_sms_texts_due", "status", "due_at"),
    sa.Index("ix_sms_texts_tenant_page", "tenant_id", "id"),
)

__all__ = ["metadata", "sms_consents", "sms_contacts", "sms_senders", "sms_texts"]
