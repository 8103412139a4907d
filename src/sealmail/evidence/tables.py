"""Tables of the evidence feature: audit anchors, retention and legal holds, the plain-mail and
confidential-communication registers."""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

# One row per anchor: the chain head (sequence number and hash) at a moment, signed by
# the installation's evidence key.  A history rewritten before an anchor no longer
# yields the anchored hash at that sequence number (``evidence/anchors.py``).
audit_anchors = sa.Table(
    "audit_anchors",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False, index=True),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("key_fingerprint", sa.String(64), nullable=False),
    # The whole signed document (``evidence/signed.py``), as handed to the officer.
    sa.Column("document", sa.JSON, nullable=False),
    # Scheduled anchors name their period ("2026-12-04T03" hourly): unique, so two workers
    # anchoring the same period make one anchor.  NULL for anchors made on demand.
    sa.Column("period", sa.String(20), nullable=True, unique=True),
    # RFC 3161 time-stamp token (DER) over the signed document, when a TSA is configured.
    sa.Column("timestamp_token", sa.LargeBinary, nullable=True),
)

# -- retention (164.316(b)(2), 164.530(j)) ---------------------------------------------------------
# One row per tenant that set a policy; a tenant without a row has the defaults
# (``evidence/retention.py``: six years for everything).  Days, not dates: a policy applies
# to every record by its age.
retention_policies = sa.Table(
    "retention_policies",
    metadata,
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("content_days", sa.Integer, nullable=False),
    sa.Column("metadata_days", sa.Integer, nullable=False),
    sa.Column("audit_days", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(80), nullable=False),
)

# Legal holds: while one is active (``released_at`` NULL) nothing it covers is purged.
# scope ``message`` (target = message id), ``recipient`` (target = lower-cased address) or
# ``tenant`` (target = the tenant id).
legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("scope", sa.String(10), nullable=False),
    sa.Column("target", sa.String(320), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("released_at", UtcDateTime, nullable=True),
    sa.Column("released_by", sa.String(80), nullable=True),
    sa.Index("ix_legal_holds_tenant_active", "tenant_id", "released_at"),
)

# What retention destroyed, one row per message and kind (``content`` crypto-shredded,
# ``metadata`` recipient addresses pseudonymised): the retention report reads it, and a
# second purge run finds the work already done.
retention_purges = sa.Table(
    "retention_purges",
    metadata,
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("tenant_id", ID, nullable=False, index=True),
    sa.Column("purged_at", UtcDateTime, nullable=False),
    sa.Column("policy_days", sa.Integer, nullable=False),
)

# -- the unencrypted-by-request register (164.524(c)(2), HHS access guidance) ----------------------
# One row per patient request: the address it covers, for one tenant.  SecureLine may send
# that address plain mail only while ``state`` is ``confirmed``.
plain_requests = sa.Table(
    "plain_requests",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("address", sa.String(320), nullable=False),  # lower-cased
    sa.Column("state", sa.String(10), nullable=False),  # registers.PlainState
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("confirmed_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Index("ix_plain_requests_tenant_address", "tenant_id", "address"),
)

# Every step of every request, in order: the register an auditor reads.  ``kind`` is
# requested | warned | confirmed | revoked; ``via`` portal | staff | api; ``evidence`` what
# staff recorded (e.g. "signed form scanned to chart 2026-12-01"); ``warning_sha256`` the
# digest of the exact warning text shown.
plain_register = sa.Table(
    "plain_register",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("request_id", ID, sa.ForeignKey("plain_requests.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("via", sa.String(10), nullable=False),
    sa.Column("evidence", sa.String(1000), nullable=True),
    sa.Column("warning_sha256", sa.String(64), nullable=True),
    # Steps written in one transaction share ``at``; this per-request counter (1, 2, ...) is
    # what orders them, so the register never shows "confirmed" before "requested".
    sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_plain_register_tenant_at", "tenant_id", "at"),
    sa.UniqueConstraint("request_id", "seq", name="uq_plain_register_request_seq"),
)

# -- confidential-communication preferences (164.522(b)) -------------------------------------------
# One row per preference of one patient address at one tenant: ``kind`` portal_only |
# redirect | no_sms, ``alternative`` the address a redirect sends to.  SecureLine obeys
# the rows whose ``state`` is ``active``; a revoked row stays for the register.
comms_preferences = sa.Table(
    "comms_preferences",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("address", sa.String(320), nullable=False),  # lower-cased
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("alternative", sa.String(320), nullable=True),  # lower-cased
    sa.Column("state", sa.String(10), nullable=False),  # registers.PreferenceState
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Index("ix_comms_preferences_tenant_address", "tenant_id", "address"),
)

# Every step of every preference, in order (``kind`` recorded | revoked), like
# ``plain_register``: who, when, how (portal | staff), what staff recorded as evidence.
comms_preference_register = sa.Table(
    "comms_preference_register",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("preference_id", ID, sa.ForeignKey("comms_preferences.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("via", sa.String(10), nullable=False),
    sa.Column("evidence", sa.String(1000), nullable=True),
    sa.Index("ix_comms_preference_register_tenant_at", "tenant_id", "at"),
)

# Who at a tenant receives each scheduled audit anchor by mail (the compliance officer(s)).
evidence_settings = sa.Table(
    "evidence_settings",
    metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("anchor_recipients", sa.String(1000), nullable=False),  # comma-separated addresses
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(80), nullable=False),
)

# One row per (anchor, tenant, address) mailed: the primary key is the "once per anchor" guard
# when several workers tick, and the message id says which queued mail carried it.
anchor_mailings = sa.Table(
    "anchor_mailings",
    metadata,
    sa.Column("anchor_id", ID, nullable=False),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("message_id", ID, nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.PrimaryKeyConstraint("anchor_id", "tenant_id", "address"),
)

# A compliance officer's sign-off of one month's activity review (164.308(a)(1)(ii)(D)): the
# digest binds the note to exactly the items that were in the queue when it was signed.
activity_reviews = sa.Table(
    "activity_reviews",
    metadata,
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("month", sa.String(7), nullable=False),  # YYYY-MM
    sa.Column("signed_at", UtcDateTime, nullable=False),
    sa.Column("signed_by", sa.String(80), nullable=False),
    sa.Column("note", sa.String(2000), nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("items_sha256", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "month"),
)

# One row per scheduled job and period (e.g. the restore drill of 2026-12-04T00:00): inserting it
# is the claim, so however many workers tick, one runs the period; ``ok`` is its outcome.
scheduled_runs = sa.Table(
    "scheduled_runs",
    metadata,
    sa.Column("job", sa.String(40), nullable=False),
    sa.Column("period", sa.String(20), nullable=False),
    sa.Column("claimed_by", sa.String(80), nullable=False),
    sa.Column("claimed_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("ok", sa.Boolean, nullable=True),
    sa.PrimaryKeyConstraint("job", "period"),
)
