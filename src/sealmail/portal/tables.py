"""Tables of the portal feature, on the shared metadata (see ``store/all_tables.py``).

The per-recipient hold itself (``portal_messages``) lives in ``tables.py`` because the
delivery worker creates it.  These tables hold what the recipient-facing web app and
the sender's controls need.  Every secret (link tokens, challenge and session tokens,
sign-in codes, passphrases) is stored only as a hash: a database leak opens nothing.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

# Sender-side settings per message, which may be set before any hold exists (the
# worker creates holds only when it decides "portal" for a recipient).
portal_message_settings = sa.Table(
    "portal_message_settings",
    metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("passphrase_hash", sa.String(200), nullable=True),  # argon2; NULL = code sign-in
    sa.Column("expires_at", UtcDateTime, nullable=True),  # overrides every hold's own expiry
    sa.Column("recalled_at", UtcDateTime, nullable=True),
    sa.Column("shredded_at", UtcDateTime, nullable=True),  # data key destroyed
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Bookkeeping per hold that ``portal_messages`` has no column for: which lifecycle
# events have been emitted (each exactly once).
portal_hold_states = sa.Table(
    "portal_hold_states",
    metadata,
    sa.Column("portal_message_id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("message_id", ID, nullable=False, index=True),
    sa.Column("notified_event_at", UtcDateTime, nullable=True),
    sa.Column("expired_at", UtcDateTime, nullable=True),
)

# A sign-in in progress: created when a link is opened, identified by a cookie whose
# SHA-256 is the id.  The one-time code is hashed together with the raw challenge token,
# so the 10^6 code space cannot be brute-forced offline from a database copy alone.
portal_challenges = sa.Table(
    "portal_challenges",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 hex of the cookie token
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("portal_message_id", ID, nullable=False),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=True),
    sa.Column("code_sent_at", UtcDateTime, nullable=True),
    sa.Column("code_expires_at", UtcDateTime, nullable=True),
    sa.Column("code_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("used_at", UtcDateTime, nullable=True),
)

portal_sessions = sa.Table(
    "portal_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 hex of the cookie token
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("address", sa.String(320), nullable=False),  # lower-case
    # True when a one-time code proved control of the mailbox; a passphrase sign-in
    # opens only the messages listed in ``unlocked``.
    sa.Column("address_verified", sa.Boolean, nullable=False),
    sa.Column("unlocked", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),  # absolute lifetime
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Index("ix_portal_sessions_tenant_address", "tenant_id", "address"),
)

# Failed sign-ins per (tenant, address) in a sliding window, and the lock they lead to.
portal_lockouts = sa.Table(
    "portal_lockouts",
    metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_started_at", UtcDateTime, nullable=False),
    sa.Column("locked_until", UtcDateTime, nullable=True),
    sa.Column("codes_sent", sa.Integer, nullable=False, default=0),
    sa.Column("codes_window_started_at", UtcDateTime, nullable=True),
)

# A recipient's secure reply: the reply itself is an ordinary (encrypted) message row;
# this ties it to the thread it answers.
portal_replies = sa.Table(
    "portal_replies",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("portal_message_id", ID, nullable=False, index=True),
    sa.Column("reply_message_id", ID, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

__all__ = [
    "metadata",
    "portal_challenges",
    "portal_hold_states",
    "portal_lockouts",
    "portal_message_settings",
    "portal_replies",
    "portal_sessions",
]
