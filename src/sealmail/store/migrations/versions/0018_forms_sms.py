"""forms and sms: hosted form definitions (versioned) and their sealed submissions; texts

Revision ID: 0018_forms_sms
Revises: 0017
Create Date: 2026-12-04 03:10:00

Written in the shape autogenerate gives for ``forms/tables.py`` and ``sms/tables.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0018_forms_sms"
down_revision = "0017"
branch_labels = None
depends_on = None

UtcDateTime = sealmail.store.tables.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "forms",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_forms_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
    )
    with op.batch_alter_table("forms", schema=None) as batch_op:
        batch_op.create_index("ix_forms_tenant_page", ["tenant_id", "id"], unique=False)
    op.create_table(
        "form_versions",
        sa.Column("form_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["form_id"], ["forms.id"], name=op.f("fk_form_versions_form_id_forms")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_form_versions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("form_id", "version", name=op.f("pk_form_versions")),
    )
    op.create_table(
        "form_submissions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("form_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("received_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("token_nonce", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["form_id"], ["forms.id"], name=op.f("fk_form_submissions_form_id_forms")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_form_submissions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_submissions")),
        sa.UniqueConstraint("token_nonce", name=op.f("uq_form_submissions_token_nonce")),
    )
    with op.batch_alter_table("form_submissions", schema=None) as batch_op:
        batch_op.create_index("ix_form_submissions_tenant_form", ["tenant_id", "form_id", "id"], unique=False)

    _sms()


def _sms() -> None:
    op.create_table(
        "sms_senders",
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sms_senders_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_sms_senders")),
    )
    with op.batch_alter_table("sms_senders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_senders_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "sms_contacts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("notice", sa.String(length=10), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sms_contacts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_contacts")),
        sa.UniqueConstraint("tenant_id", "number", name="uq_sms_contacts_tenant_number"),
    )
    with op.batch_alter_table("sms_contacts", schema=None) as batch_op:
        batch_op.create_index("ix_sms_contacts_tenant_address", ["tenant_id", "address"], unique=False)
    op.create_table(
        "sms_consents",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sms_consents_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "number", "purpose", name=op.f("pk_sms_consents")),
    )
    op.create_table(
        "sms_texts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=16), nullable=False),
        sa.Column("template", sa.String(length=20), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=True),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.Column("recipient_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.String(length=200), nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_message_id", sa.String(length=65), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("due_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sms_texts_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_texts")),
    )
    with op.batch_alter_table("sms_texts", schema=None) as batch_op:
        batch_op.create_index("ix_sms_texts_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_sms_texts_provider_id", ["provider", "provider_message_id"], unique=False)
        batch_op.create_index("ix_sms_texts_tenant_page", ["tenant_id", "id"], unique=False)


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
