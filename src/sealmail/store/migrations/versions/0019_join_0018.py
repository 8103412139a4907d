"""Join the six branches that grew from 0017 in parallel: console auth and operations,
evidence, secure forms and SMS, secure marketing, standards (REQUIRETLS).

Revision ID: 0019
Revises: 0018_console_auth, 0018_console_ops, 0018_evidence, 0018_forms_sms, 0018_marketing, 0018_standards
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

revision = "0019"
down_revision = (
    "0018_console_auth",
    "0018_console_ops",
    "0018_evidence",
    "0018_forms_sms",
    "0018_marketing",
    "0018_standards",
)
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
