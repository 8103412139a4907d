"""marketing: contacts with typed attributes, the consent ledger and authorizations, lists,
segments, caps, campaigns and their sends, journeys and enrollments (issue 16)

Revision ID: 0018_marketing
Revises: 0017
Create Date: 2026-12-04 03:15:00

Written in the shape autogenerate gives for ``marketing/tables.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0018_marketing"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mkt_attributes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("phi_class", sa.String(length=12), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_attributes_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_attributes")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_mkt_attributes_tenant_name"),
    )
    op.create_table(
        "mkt_caps",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("max_sends", sa.Integer(), nullable=False),
        sa.Column("window_hours", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_caps_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "purpose", name=op.f("pk_mkt_caps")),
    )
    op.create_table(
        "mkt_contacts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=14), nullable=False),
        sa.Column("attrs", sa.JSON(), nullable=False),
        sa.Column("blind", sa.JSON(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_contacts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_contacts")),
        sa.UniqueConstraint("tenant_id", "email", name="uq_mkt_contacts_tenant_email"),
    )
    with op.batch_alter_table("mkt_contacts", schema=None) as batch_op:
        batch_op.create_index("ix_mkt_contacts_tenant_status", ["tenant_id", "status"], unique=False)

    op.create_table(
        "mkt_imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_imports_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_imports")),
    )
    op.create_table(
        "mkt_journeys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_journeys_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_journeys")),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_mkt_journeys_tenant_name_version"),
    )
    op.create_table(
        "mkt_lists",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_lists_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_lists")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_mkt_lists_tenant_name"),
    )
    op.create_table(
        "mkt_segments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("phi_classes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_segments_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_segments")),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_mkt_segments_tenant_name_version"),
    )
    op.create_table(
        "mkt_authorizations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("information", sa.String(length=1000), nullable=False),
        sa.Column("disclosed_by", sa.String(length=300), nullable=False),
        sa.Column("disclosed_to", sa.String(length=300), nullable=False),
        sa.Column("purpose_statement", sa.String(length=1000), nullable=False),
        sa.Column("expires_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("signed_by", sa.String(length=200), nullable=False),
        sa.Column("signed_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("statements", sa.JSON(), nullable=False),
        sa.Column("remuneration", sa.Boolean(), nullable=False),
        sa.Column("remuneration_statement", sa.String(length=1000), nullable=True),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["mkt_contacts.id"], name=op.f("fk_mkt_authorizations_contact_id_mkt_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_authorizations_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_authorizations")),
    )
    with op.batch_alter_table("mkt_authorizations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mkt_authorizations_contact", ["tenant_id", "contact_id", "purpose"], unique=False
        )

    op.create_table(
        "mkt_campaigns",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("remunerated", sa.Boolean(), nullable=False),
        sa.Column("segment_id", sa.String(length=40), nullable=False),
        sa.Column("from_address", sa.String(length=400), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("send_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("quiet_start", sa.Integer(), nullable=False),
        sa.Column("quiet_end", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("audience", sa.Integer(), nullable=True),
        sa.Column("queued", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("started_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["mkt_segments.id"], name=op.f("fk_mkt_campaigns_segment_id_mkt_segments")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_campaigns_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_campaigns")),
    )
    op.create_table(
        "mkt_consent_current",
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("authorization_id", sa.String(length=40), nullable=True),
        sa.Column("expires_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["mkt_contacts.id"], name=op.f("fk_mkt_consent_current_contact_id_mkt_contacts")
        ),
        sa.PrimaryKeyConstraint("contact_id", "purpose", "channel", name=op.f("pk_mkt_consent_current")),
    )
    op.create_table(
        "mkt_enrollments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("journey_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("trigger_key", sa.String(length=100), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("due_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("steps_run", sa.Integer(), nullable=False),
        sa.Column("last_reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["mkt_contacts.id"], name=op.f("fk_mkt_enrollments_contact_id_mkt_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["journey_id"], ["mkt_journeys.id"], name=op.f("fk_mkt_enrollments_journey_id_mkt_journeys")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_enrollments_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_enrollments")),
        sa.UniqueConstraint("journey_id", "contact_id", "trigger_key", name="uq_mkt_enrollments_once"),
    )
    with op.batch_alter_table("mkt_enrollments", schema=None) as batch_op:
        batch_op.create_index("ix_mkt_enrollments_due", ["state", "due_at"], unique=False)

    op.create_table(
        "mkt_import_errors",
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("field", sa.String(length=60), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["mkt_imports.id"], name=op.f("fk_mkt_import_errors_import_id_mkt_imports")
        ),
        sa.PrimaryKeyConstraint("import_id", "row", "seq", name=op.f("pk_mkt_import_errors")),
    )
    op.create_table(
        "mkt_list_members",
        sa.Column("list_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("added_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["mkt_contacts.id"], name=op.f("fk_mkt_list_members_contact_id_mkt_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["mkt_lists.id"], name=op.f("fk_mkt_list_members_list_id_mkt_lists")
        ),
        sa.PrimaryKeyConstraint("list_id", "contact_id", name=op.f("pk_mkt_list_members")),
    )
    with op.batch_alter_table("mkt_list_members", schema=None) as batch_op:
        batch_op.create_index("ix_mkt_list_members_contact", ["contact_id"], unique=False)

    op.create_table(
        "mkt_sends",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("enrollment_id", sa.String(length=40), nullable=True),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("remunerated", sa.Boolean(), nullable=False),
        sa.Column("variant", sa.String(length=40), nullable=True),
        sa.Column("matched", sa.JSON(), nullable=False),
        sa.Column("quiet_start", sa.Integer(), nullable=False),
        sa.Column("quiet_end", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["mkt_contacts.id"], name=op.f("fk_mkt_sends_contact_id_mkt_contacts")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_sends_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_mkt_sends")),
    )
    with op.batch_alter_table("mkt_sends", schema=None) as batch_op:
        batch_op.create_index("ix_mkt_sends_campaign", ["campaign_id"], unique=False)
        batch_op.create_index(
            "ix_mkt_sends_contact_purpose", ["contact_id", "purpose", "sent_at"], unique=False
        )

    op.create_table(
        "mkt_consent_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("evidence", sa.String(length=500), nullable=True),
        sa.Column("authorization_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["mkt_authorizations.id"],
            name=op.f("fk_mkt_consent_events_authorization_id_mkt_authorizations"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["mkt_contacts.id"], name=op.f("fk_mkt_consent_events_contact_id_mkt_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mkt_consent_events_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mkt_consent_events")),
    )
    with op.batch_alter_table("mkt_consent_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mkt_consent_events_contact", ["tenant_id", "contact_id", "at"], unique=False
        )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
