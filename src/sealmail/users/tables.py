"""Tables of console users (issue 14), on the shared metadata.

Every secret is stored only as a hash or under the tenant's encryption: passwords as
argon2id, recovery codes as argon2id, session and one-time-link tokens as SHA-256 (they
carry 256 bits of entropy, so a fast hash is enough), TOTP seeds wrapped by the keyring.
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),  # lower-case; the sign-in name
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=True),  # NULL until the invitation is used
    sa.Column("totp_secret", sa.LargeBinary, nullable=True),  # keyring-encrypted base32 seed
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),  # RFC 6238 §5.2: one use per step
    sa.Column("recovery_hashes", sa.JSON, nullable=False),
    sa.Column("failed_signins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", UtcDateTime, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=True),  # auditors' access ends
    sa.Column("disabled_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    # Single sign-on: the OP's issuer and subject this person first signed in as; later
    # sign-ins must present the same subject (an email address can be reassigned).
    sa.Column("sso_subject", sa.String(600), nullable=True),
    # An owner marked this person as one who may take break-glass emergency access.
    sa.Column("break_glass", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.UniqueConstraint("tenant_id", "email", name="uq_console_users_tenant_email"),
)

# One-time links: the first owner's sign-in and invitations.  Used once, then dead.
console_links = sa.Table(
    "console_links",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 hex of the token
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("user_id", ID, nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=True),
)

# A sign-in in progress (password accepted, second factor or enrolment pending) or a
# signed-in session; ``stage`` says which.  Server-side, so signing out, disabling the
# user or idling past the limit ends it for real (45 CFR 164.312(a)(2)(iii)).
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 hex of the cookie token
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("user_id", ID, nullable=False, index=True),
    sa.Column("stage", sa.String(10), nullable=False),  # mfa | enroll | active
    sa.Column("pending_secret", sa.LargeBinary, nullable=True),  # TOTP seed being enrolled
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),  # absolute lifetime
    sa.Column("ended_at", UtcDateTime, nullable=True),
)

# Which console user created which API key: keys carry their creator and die with them
# (disabling the user revokes the keys in the same transaction).
console_api_keys = sa.Table(
    "console_api_keys",
    metadata,
    sa.Column("api_key_id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("user_id", ID, nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# WebAuthn passkeys (a second factor): one row per credential, owned by one user.  The
# public key is public; the sign counter is checked and advanced on every use (a clone
# that replays an older count is refused, WebAuthn §6.1.1).
console_passkeys = sa.Table(
    "console_passkeys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("user_id", ID, nullable=False, index=True),
    sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),  # base64url
    sa.Column("public_key", sa.LargeBinary, nullable=False),  # COSE key
    sa.Column("sign_count", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("aaguid", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
)

# Server-side one-time ceremony state: a WebAuthn challenge bound to the session that asked
# for it, or an OpenID Connect sign-in's state, nonce and PKCE verifier.  Taken (deleted)
# by the step that checks it; expired rows are worthless and swept when a new one is made.
console_challenges = sa.Table(
    "console_challenges",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 of session token + purpose, or of state
    sa.Column("purpose", sa.String(20), nullable=False),
    sa.Column("tenant_id", ID, nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# A tenant's OpenID Connect single sign-on: its OP (issuer), the client registered there
# (the secret sealed under a site key), the one email domain it may sign in (a verified
# sender domain of the tenant, unique across tenants) and the role given to a person who
# arrives without an invitation (NULL: only invited people may sign in).
console_sso = sa.Table(
    "console_sso",
    metadata,
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("issuer", sa.String(400), nullable=False),
    sa.Column("client_id", sa.String(200), nullable=False),
    sa.Column("client_secret", sa.LargeBinary, nullable=False),  # sealed
    sa.Column("email_domain", sa.String(253), nullable=False, unique=True),
    sa.Column("default_role", sa.String(20), nullable=True),
    # The OP must report a multi-factor sign-in (``amr`` holds ``mfa``, RFC 8176): the
    # console's MFA requirement, met at the OP.  Off only for OPs that never send ``amr``.
    sa.Column("require_mfa", sa.Boolean, nullable=False, default=True, server_default=sa.true()),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(80), nullable=False),
)

# Break-glass emergency access: a person the owners marked eligible (``console_users.
# break_glass``) takes wider access for a short time with a written reason; every page they
# open meanwhile is audited and the owners are mailed at once.
console_emergency = sa.Table(
    "console_emergency",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("user_id", ID, nullable=False, index=True),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("granted_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("ended_by", sa.String(80), nullable=True),
)
