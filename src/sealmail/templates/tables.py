"""Tables of the templates feature, on the shared metadata (see ``store/all_tables.py``).

Templates are tenant-authored layout, not patient data: the variables that personalize
them (which may be PHI) are never stored here, only inside each rendered message's
encrypted content.  Bulk error rows carry the recipient's index in the request and a
field/message pair, never an address or a variable's value.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

# One row per version; the highest version of a name is the active one.  Versions are
# immutable, so a message can always say which text produced it.
message_templates = sa.Table(
    "message_templates",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.UniqueConstraint("tenant_id", "name", "version", name="uq_message_templates_tenant_name_version"),
)

bulk_jobs = sa.Table(
    "bulk_jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # states.BulkStatus
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("accepted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("template_name", sa.String(100), nullable=True),  # null: inline content
    sa.Column("template_version", sa.Integer, nullable=True),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Index("ix_bulk_jobs_tenant_created", "tenant_id", "created_at"),
)

bulk_job_errors = sa.Table(
    "bulk_job_errors",
    metadata,
    sa.Column("job_id", ID, sa.ForeignKey("bulk_jobs.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),  # position in the request's recipients
    sa.Column("seq", sa.Integer, primary_key=True),  # one recipient may have several errors
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("field", sa.String(200), nullable=False),
    sa.Column("message", sa.String(500), nullable=False),
)

__all__ = ["bulk_job_errors", "bulk_jobs", "message_templates", "metadata"]
