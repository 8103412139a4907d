"""Tables of the marketing feature (issue 16), on the shared metadata.

Contacts keep their non-sensitive attributes in ``attrs`` (JSON, typed by the tenant's
``mkt_attributes`` declarations); attributes of PHI class ``sensitive`` (HIV status, 42
CFR Part 2 data) are sealed per contact under the tenant's keyring (``sealed`` with its
wrapped data key) and appear in plaintext nowhere: ``blind`` holds an HMAC token per
sensitive attribute, so segments can test equality without decrypting.

The consent ledger ``mkt_consent_events`` is append-only (the service has no update or
delete for it); ``mkt_consent_current`` is its projection, written in the same
transaction as each event.  ``mkt_sends`` is one row per message a campaign or journey
queued: the audience snapshot (who, and which rules matched) and the state the claim
gate (``marketing.gate``) leaves it in.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from sealmail.store.tables import ID, UtcDateTime, metadata

# jsonb on PostgreSQL (migration 0022): parsed once on write, not at every segment count.
JSON_B = sa.JSON().with_variant(JSONB(), "postgresql")

mkt_attributes = sa.Table(
    "mkt_attributes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("type", sa.String(10), nullable=False),  # text | number | date | boolean | choice
    sa.Column("phi_class", sa.String(12), nullable=False),  # none | demographic | clinical | sensitive
    sa.Column("choices", sa.JSON, nullable=True),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_mkt_attributes_tenant_name"),
)

mkt_contacts = sa.Table(
    "mkt_contacts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),  # lower-cased addr-spec
    sa.Column("phone", sa.String(20), nullable=True),  # E.164
    sa.Column("tz", sa.String(64), nullable=False),  # IANA zone name
    sa.Column("status", sa.String(14), nullable=False),  # active | unsubscribed | bounced | archived
    sa.Column("attrs", JSON_B, nullable=False),
    sa.Column("blind", JSON_B, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=True),
    sa.Column("key_id", ID, nullable=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "email", name="uq_mkt_contacts_tenant_email"),
    sa.Index("ix_mkt_contacts_tenant_status", "tenant_id", "status"),
)

mkt_imports = sa.Table(
    "mkt_imports",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # states.ImportStatus
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("updated", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    # The rows a background import expects (lines counted on upload); ``rows`` once finished.
    sa.Column("total", sa.Integer, nullable=True),
    # Moved by every chunk: a processing import whose last chunk is long past was interrupted.
    sa.Column("progress_at", UtcDateTime, nullable=True),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
)

# Per-row errors name the row and the column, never the cell's value (it may be PHI).
mkt_import_errors = sa.Table(
    "mkt_import_errors",
    metadata,
    sa.Column("import_id", ID, sa.ForeignKey("mkt_imports.id"), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("field", sa.String(60), nullable=False),
    sa.Column("message", sa.String(300), nullable=False),
)

mkt_lists = sa.Table(
    "mkt_lists",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_mkt_lists_tenant_name"),
)

mkt_list_members = sa.Table(
    "mkt_list_members",
    metadata,
    sa.Column("list_id", ID, sa.ForeignKey("mkt_lists.id"), primary_key=True),
    sa.Column("contact_id", ID, sa.ForeignKey("mkt_contacts.id"), primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Index("ix_mkt_list_members_contact", "contact_id"),
)

mkt_authorizations = sa.Table(
    "mkt_authorizations",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("mkt_contacts.id"), nullable=False),
    sa.Column("purpose", sa.String(12), nullable=False),
    # 45 CFR 164.508(c)(1): the core elements.
    sa.Column("information", sa.String(1000), nullable=False),
    sa.Column("disclosed_by", sa.String(300), nullable=False),
    sa.Column("disclosed_to", sa.String(300), nullable=False),
    sa.Column("purpose_statement", sa.String(1000), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("signed_by", sa.String(200), nullable=False),
    sa.Column("signed_at", UtcDateTime, nullable=False),
    # 164.508(c)(2): the required statements, confirmed present in the signed document.
    sa.Column("statements", sa.JSON, nullable=False),
    # 164.508(a)(3)(ii): remuneration from a third party must be stated.
    sa.Column("remuneration", sa.Boolean, nullable=False),
    sa.Column("remuneration_statement", sa.String(1000), nullable=True),
    sa.Column("document_sha256", sa.String(64), nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_mkt_authorizations_contact", "tenant_id", "contact_id", "purpose"),
)

mkt_consent_events = sa.Table(
    "mkt_consent_events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("mkt_contacts.id"), nullable=False),
    sa.Column("purpose", sa.String(12), nullable=False),  # treatment | operations | marketing | fundraising
    sa.Column("channel", sa.String(8), nullable=False),  # email | sms
    sa.Column("action", sa.String(10), nullable=False),  # grant | revoke | authorize | expire
    sa.Column("source", sa.String(20), nullable=False),  # form | api | import | one_click | staff | …
    sa.Column("evidence_sha256", sa.String(64), nullable=True),
    sa.Column("evidence", sa.String(500), nullable=True),  # a reference (form id, ticket), not a document
    sa.Column("authorization_id", ID, sa.ForeignKey("mkt_authorizations.id"), nullable=True),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index("ix_mkt_consent_events_contact", "tenant_id", "contact_id", "at"),
)

mkt_consent_current = sa.Table(
    "mkt_consent_current",
    metadata,
    sa.Column("contact_id", ID, sa.ForeignKey("mkt_contacts.id"), primary_key=True),
    sa.Column("purpose", sa.String(12), primary_key=True),
    sa.Column("channel", sa.String(8), primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),  # domain.marketing.ConsentState
    sa.Column("authorization_id", ID, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("event_id", ID, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

mkt_segments = sa.Table(
    "mkt_segments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("rule", sa.JSON, nullable=False),
    sa.Column("phi_classes", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", "version", name="uq_mkt_segments_tenant_name_version"),
)

mkt_caps = sa.Table(
    "mkt_caps",
    metadata,
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("purpose", sa.String(12), primary_key=True),
    sa.Column("max_sends", sa.Integer, nullable=False),
    sa.Column("window_hours", sa.Integer, nullable=False),
)

mkt_campaigns = sa.Table(
    "mkt_campaigns",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("purpose", sa.String(12), nullable=False),
    sa.Column("remunerated", sa.Boolean, nullable=False),
    sa.Column("segment_id", ID, sa.ForeignKey("mkt_segments.id"), nullable=False),
    sa.Column("from_address", sa.String(400), nullable=False),
    sa.Column("variants", sa.JSON, nullable=False),  # [{name, template, version, weight}]
    sa.Column("send_at", UtcDateTime, nullable=True),
    sa.Column("quiet_start", sa.Integer, nullable=False),  # local hour quiet hours begin
    sa.Column("quiet_end", sa.Integer, nullable=False),  # local hour they end
    sa.Column("status", sa.String(10), nullable=False),  # states.CampaignStatus
    sa.Column("audience", sa.Integer, nullable=True),
    sa.Column("queued", sa.Integer, nullable=True),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=True),
    # The background expansion (campaign_jobs.py): who started it (the queueing principal),
    # the expander's lease, the last contact id expanded, and when the audience was complete.
    sa.Column("started_by", sa.String(80), nullable=True),
    sa.Column("lease_owner", sa.String(80), nullable=True),
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("expand_cursor", sa.String(40), nullable=True),
    sa.Column("expanded_at", UtcDateTime, nullable=True),
    sa.Column("failed", sa.Integer, nullable=True),
    # The last resume: the complaint breaker judges only what was sent and complained after it.
    sa.Column("resumed_at", UtcDateTime, nullable=True),
    sa.Index("ix_mkt_campaigns_status", "status"),
)

mkt_sends = sa.Table(
    "mkt_sends",
    metadata,
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("mkt_contacts.id"), nullable=False),
    sa.Column("campaign_id", ID, nullable=True),
    sa.Column("enrollment_id", ID, nullable=True),
    sa.Column("purpose", sa.String(12), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("remunerated", sa.Boolean, nullable=False),
    sa.Column("variant", sa.String(40), nullable=True),
    sa.Column("matched", sa.JSON, nullable=False),  # why the contact was in the audience
    sa.Column("quiet_start", sa.Integer, nullable=False),
    sa.Column("quiet_end", sa.Integer, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),  # states.SendState
    sa.Column("reason", sa.String(40), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    # A journey's send: the journey version and the step (node) that queued it.
    sa.Column("journey_id", ID, nullable=True),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Index("ix_mkt_sends_contact_purpose", "contact_id", "purpose", "sent_at"),
    sa.Index("ix_mkt_sends_campaign", "campaign_id"),
    sa.Index("ix_mkt_sends_journey_step", "journey_id", "step"),
)

mkt_journeys = sa.Table(
    "mkt_journeys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Paused (migration 0026): by a user, the complaint breaker, or a send step failing its
    # pre-send compliance checks at run time; its sends are held until it is resumed.
    # ``resumed_at`` opens the complaint breaker's new window, as for campaigns.
    sa.Column("paused_reason", sa.String(40), nullable=True),
    sa.Column("paused_at", UtcDateTime, nullable=True),
    sa.Column("resumed_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("tenant_id", "name", "version", name="uq_mkt_journeys_tenant_name_version"),
)

mkt_enrollments = sa.Table(
    "mkt_enrollments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("journey_id", ID, sa.ForeignKey("mkt_journeys.id"), nullable=False),
    sa.Column("contact_id", ID, sa.ForeignKey("mkt_contacts.id"), nullable=False),
    sa.Column("trigger_key", sa.String(100), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("state", sa.String(8), nullable=False),  # states.EnrollmentState
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(80), nullable=True),
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("steps_run", sa.Integer, nullable=False),
    sa.Column("last_reason", sa.String(40), nullable=True),
    # A wait-until step: the event key it waits for (``contact id:event``); events find the
    # enrollments to wake through this index, never by scanning.
    sa.Column("awaiting", sa.String(160), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Idempotent per contact: the same trigger enrols a contact in a journey once.
    sa.UniqueConstraint("journey_id", "contact_id", "trigger_key", name="uq_mkt_enrollments_once"),
    sa.Index("ix_mkt_enrollments_due", "state", "due_at"),
    sa.Index("ix_mkt_enrollments_awaiting", "awaiting"),
)

__all__ = [
    "metadata",
    "mkt_attributes",
    "mkt_authorizations",
    "mkt_campaigns",
    "mkt_caps",
    "mkt_consent_current",
    "mkt_consent_events",
    "mkt_contacts",
    "mkt_enrollments",
    "mkt_import_errors",
    "mkt_imports",
    "mkt_journeys",
    "mkt_list_members",
    "mkt_lists",
    "mkt_segments",
    "mkt_sends",
]
