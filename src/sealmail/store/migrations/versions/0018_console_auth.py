"""console auth: passkeys, ceremony state, single sign-on, emergency access, credential creators (issue 14)

Revision ID: 0018_console_auth
Revises: 0017
Written by autogenerate for ``users/tables.py`` and the creator columns.
Create Date: 2026-12-04 03:25:23.562116
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0018_console_auth"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_challenges")),
    )
    with op.batch_alter_table("console_challenges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_challenges_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "console_emergency",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("granted_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_emergency")),
    )
    with op.batch_alter_table("console_emergency", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_emergency_user_id"), ["user_id"], unique=False)

    op.create_table(
        "console_passkeys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_console_passkeys_credential_id")),
    )
    with op.batch_alter_table("console_passkeys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_passkeys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "console_sso",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("issuer", sa.String(length=400), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("client_secret", sa.LargeBinary(), nullable=False),
        sa.Column("email_domain", sa.String(length=253), nullable=False),
        sa.Column("default_role", sa.String(length=20), nullable=True),
        sa.Column("require_mfa", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_console_sso_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_console_sso")),
        sa.UniqueConstraint("email_domain", name=op.f("uq_console_sso_email_domain")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=80), nullable=True))

    with op.batch_alter_table("console_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sso_subject", sa.String(length=600), nullable=True))
        batch_op.add_column(sa.Column("break_glass", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("smtp_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=80), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
