"""Tables of the secure forms feature.

A form keeps every version it ever had (a submission names the version its submitter
saw).  A submission's content is sealed like a message's (a data key per submission,
wrapped by the tenant key, bound to tenant and submission id); the row holds only ids,
times and sizes in the clear.  ``token_nonce`` is unique: a served page's time-token
works once.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

forms = sa.Table(
    "forms",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("current_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # states.FormStatus
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_forms_tenant_page", "tenant_id", "id"),
)

form_versions = sa.Table(
    "form_versions",
    metadata,
    sa.Column("form_id", ID, sa.ForeignKey("forms.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

form_submissions = sa.Table(
    "form_submissions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("form_id", ID, sa.ForeignKey("forms.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("token_nonce", sa.String(64), nullable=False, unique=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    # SHA-256 of the sealed JSON record: the receipt shows it, so both sides can prove it.
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("key_id", ID, nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # states.SubmissionStatus
    sa.Column("status_reason", sa.String(200), nullable=True),
    sa.Column("message_id", ID, nullable=True),  # the secure message that delivered it
    sa.Index("ix_form_submissions_tenant_form", "tenant_id", "form_id", "id"),
)

__all__ = ["form_submissions", "form_versions", "forms", "metadata"]
