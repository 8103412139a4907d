"""The schema: one ``MetaData`` shared by the application and Alembic.

Every tenant-owned table carries ``tenant_id`` and every query filters on it, which is
what lets the tables become distributed tables (Citus) later without query rewrites.
Plaintext columns are the metadata needed to route, search and audit (addresses, status,
timestamps, sizes); subject, bodies, attachments and raw MIME live only inside
``messages.content`` (AES-256-GCM, see ``crypto/vault.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both engines (SQLite drops tzinfo on the way in)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]  # datetime from driver
        return value.astimezone(UTC)  # type: ignore[no-any-return]  # datetime from driver


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = sa.String(40)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

tenant_keys = sa.Table(
    "tenant_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("master_key_id", sa.String(40), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

sender_domains = sa.Table(
    "sender_domains",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("verification_token", sa.String(64), nullable=False),
    sa.Column("verified_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_sender_domains_tenant_name"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    # The lookup part of the key (public, indexed); the secret part is verified with argon2.
    sa.Column("lookup", sa.String(32), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(200), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    # Who made it (``user:…``, an API key id, ``cli``): a key dies with the person behind it.
    sa.Column("created_by", sa.String(80), nullable=True),
)

smtp_credentials = sa.Table(
    "smtp_credentials",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("username", sa.String(200), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(200), nullable=False),
    sa.Column("stream", sa.String(20), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    # Who made it (``user:…``, an API key id, ``cli``): it dies with the person behind it.
    sa.Column("created_by", sa.String(80), nullable=True),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("stream", sa.String(20), nullable=False),
    sa.Column("source", sa.String(10), nullable=False),  # api | smtp
    sa.Column("actor", sa.String(80), nullable=False),  # credential id that submitted it
    sa.Column("mail_from", sa.String(320), nullable=False),  # envelope sender
    sa.Column("header_from", sa.String(320), nullable=False),
    sa.Column("message_id_header", sa.String(400), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("tls_policy", sa.String(20), nullable=True),  # as requested; None = defaults
    # RFC 8689: "requiretls" (MAIL FROM REQUIRETLS) | "no" (TLS-Required: No) | None.
    sa.Column("tls_required", sa.String(12), nullable=True),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # queued | cancelled | done
    sa.Column("send_at", UtcDateTime, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("event_seq", sa.Integer, nullable=False, default=0),
    # DLP verdict: the action and which detectors fired where (never matched values).
    sa.Column("dlp_action", sa.String(20), nullable=False, server_default="none"),
    sa.Column("dlp_findings", sa.JSON, nullable=True),
    # What the sender asked: auto (SecureLine decides) | secure (message-level only).
    sa.Column("protection", sa.String(10), nullable=False, server_default="auto"),
    # Envelope encryption: content under a per-message data key, wrapped by a tenant key.
    sa.Column("tenant_key_id", ID, nullable=True),
    sa.Column("wrapped_data_key", sa.LargeBinary, nullable=True),  # NULL = crypto-shredded
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Index("ix_messages_tenant_created", "tenant_id", "id"),
)

recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("message_id", ID, sa.ForeignKey("messages.id"), nullable=False, index=True),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("domain", sa.String(255), nullable=False),  # ASCII (IDNA) destination domain
    sa.Column("kind", sa.String(4), nullable=False),  # to | cc | bcc | env
    # queued | deferred | delivering | delivered | bounced | expired | cancelled
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(80), nullable=True),
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_reason", sa.String(40), nullable=True),
    sa.Column("last_detail", sa.String(500), nullable=True),
    # SecureLine's choice for this recipient and why (pgp | smime | tls | portal).
    sa.Column("method", sa.String(10), nullable=True),
    sa.Column("method_reason", sa.String(500), nullable=True),
    # How a portal notice reaches this recipient, as the sender asked: email | sms | both;
    # NULL leaves it to the SMS contact's own choice (issue 17).
    sa.Column("notice", sa.String(5), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_recipients_due", "status", "next_attempt_at"),
    sa.Index("ix_recipients_tenant_address", "tenant_id", "address"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("message_id", ID, nullable=False),
    sa.Column("recipient_id", ID, nullable=False, index=True),
    sa.Column("worker", sa.String(80), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("detail", sa.String(500), nullable=False),
    sa.Column("mx_host", sa.String(255), nullable=True),
    sa.Column("mx_ip", sa.String(64), nullable=True),
    sa.Column("tls_version", sa.String(20), nullable=True),
    sa.Column("tls_cipher", sa.String(100), nullable=True),
    sa.Column("tls_verified", sa.Boolean, nullable=False),
    sa.Column("verified_by", sa.String(20), nullable=False),
    sa.Column("smtp_code", sa.Integer, nullable=True),
    sa.Column("enhanced_code", sa.String(12), nullable=True),
    sa.Column("reply", sa.String(500), nullable=True),
    # For the proof of delivery (evidence/): what went into DATA and whose certificate took it.
    sa.Column("sent_sha256", sa.String(64), nullable=True),
    sa.Column("peer_cert_sha256", sa.String(64), nullable=True),
    # The recipient key an OpenPGP or S/MIME copy was encrypted to, as SecureLine chose it,
    # and where it came from (uploaded | wkd | keyserver | autocrypt | harvested): recorded
    # when the copy leaves, so the trail still names it after the key is replaced.
    sa.Column("key_fingerprint", sa.String(128), nullable=True),
    sa.Column("key_source", sa.String(20), nullable=True),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("message_id", ID, nullable=False, index=True),
    sa.Column("recipient_id", ID, nullable=True),
    sa.Column("recipient", sa.String(320), nullable=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_events_tenant_id", "tenant_id", "id"),
)

# Installation-wide secrets (the HMAC roots of signed return paths and recipient links),
# wrapped by the master key like tenant keys, so every process of a deployment derives
# the same keys and `keys rotate` rewraps them with the rest.
site_secrets = sa.Table(
    "site_secrets",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("master_key_id", sa.String(40), nullable=False),
    sa.Column("wrapped_secret", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column("tenant_id", ID, nullable=True, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("target", sa.String(80), nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row: the head of the audit hash chain.  Appending locks it (FOR UPDATE), so
# concurrent writers on PostgreSQL append one after another and the tail cannot be
# truncated without the head disagreeing.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Per-destination state shared by every worker on every host: the circuit breaker.
destinations = sa.Table(
    "destinations",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("suspended_until", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

captured_messages = sa.Table(
    "captured_messages",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("sealmail_message_id", ID, nullable=True, index=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("mail_from", sa.String(320), nullable=False),
    sa.Column("rcpt_to", sa.JSON, nullable=False),
    sa.Column("tls_version", sa.String(20), nullable=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

# Tags in their own table so search by tag is an indexed join, not a JSON scan.
message_tags = sa.Table(
    "message_tags",
    metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Column("message_id", ID, primary_key=True),
)

# -- SecureLine ----------------------------------------------------------------------------

# Recipient certificates (public material: stored in the clear), uploaded or discovered.
recipient_keys = sa.Table(
    "recipient_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # pgp | smime
    sa.Column("address", sa.String(320), nullable=False),  # lower-case addr-spec
    sa.Column("fingerprint", sa.String(128), nullable=False),
    sa.Column("source", sa.String(20), nullable=False),  # uploaded | wkd | keyserver | autocrypt | harvested
    sa.Column("trusted", sa.Boolean, nullable=False, default=False),  # S/MIME: tenant vouches for it
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # S/MIME: SMIMECapabilities harvested from the correspondent's signed mail ("aes-gcm,rsa-oaep").
    sa.Column("capabilities", sa.String(100), nullable=True),
    sa.UniqueConstraint("tenant_id", "kind", "address", "fingerprint", name="uq_recipient_keys_identity"),
    sa.Index("ix_recipient_keys_lookup", "tenant_id", "address"),
)

# One row: bumped by a trigger (migration 0027) in every transaction that changes
# recipient_keys, so a worker may keep key rows in memory while the counter it read at its
# latest claim still matches the one they were read under.
keydir_generation = sa.Table(
    "keydir_generation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="one_row"),
    info={"fixture": True},  # not data: never backed up, restored or emptied by tests
)

# What discovery (WKD, keyserver) last found for an address, including "nothing"
# (negative caching), per tenant so one tenant cannot infer another's correspondents.
key_discovery = sa.Table(
    "key_discovery",
    metadata,
    sa.Column("tenant_id", ID, primary_key=True),
    sa.Column("method", sa.String(12), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("status", sa.String(10), nullable=False),  # found | not_found | error
    sa.Column("source", sa.String(20), nullable=True),  # e.g. WKD "advanced" / "direct"
    sa.Column("cert", sa.LargeBinary, nullable=True),
    sa.Column("detail", sa.String(300), nullable=False),
    sa.Column("checked_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

# The tenant's own keys: OpenPGP archive/signing key, S/MIME signing identity, DKIM keys.
# Secret parts are sealed under the tenant key (``secret`` + ``wrapped_data_key``).
tenant_identities = sa.Table(
    "tenant_identities",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # pgp | smime | dkim
    sa.Column("name", sa.String(255), nullable=False),  # DKIM: "<selector>._domainkey.<domain>"
    sa.Column("algorithm", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(128), nullable=False),
    sa.Column("public", sa.LargeBinary, nullable=False),
    sa.Column("tenant_key_id", ID, nullable=True),
    sa.Column("wrapped_data_key", sa.LargeBinary, nullable=True),
    sa.Column("secret", sa.LargeBinary, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# Per recipient held for the secure portal: the notice's link token is stored hashed.
portal_messages = sa.Table(
    "portal_messages",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, nullable=False),
    sa.Column("message_id", ID, nullable=False, index=True),
    sa.Column("recipient_id", ID, nullable=False, unique=True),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("notified_at", UtcDateTime, nullable=True),
    sa.Column("viewed_at", UtcDateTime, nullable=True),
    sa.Column("recalled_at", UtcDateTime, nullable=True),
    # How the notice carrying the link travelled (issue 11): the message's required TLS
    # level, what the delivered notice achieved, and whether that met the level
    # (meets | below; NULL until a notice was delivered, treated as below).
    sa.Column("notice_required_tls", sa.String(20), nullable=True),
    sa.Column("notice_tls_version", sa.String(20), nullable=True),
    sa.Column("notice_verified_by", sa.String(10), nullable=True),
    sa.Column("notice_strength", sa.String(10), nullable=True),
)

# The last known TLS capability of a destination at a required level (SecureLine fact).
destination_tls = sa.Table(
    "destination_tls",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("level", sa.String(20), primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),  # meets | fails
    sa.Column("detail", sa.String(300), nullable=False),
    sa.Column("checked_at", UtcDateTime, nullable=False),
)
