"""Signed proof of delivery, one recipient at a time.

The proof gathers what the store recorded about the delivery — the message's hash as
accepted (from its sealed content) and as sent (the worker records the hash of the DATA
bytes per attempt), the SecureLine method and its reason, the recipient key used, the
TLS session and what vouched for the server's certificate (PKIX, MTA-STS or DANE), the
remote ``250`` reply — and the audit sequence numbers of the acceptance and of this
issuance, then signs it with the tenant's evidence key (``signed.py``).  Issuing a proof
is itself audited.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.statuses import RecipientStatus
from sealmail.errors import Conflict, NotFound
from sealmail.evidence import signed
from sealmail.evidence.keys import EvidenceKeys
from sealmail.evidence.timestamps import Timestamper
from sealmail.store import db
from sealmail.store.tables import attempts, audit_log, messages, recipient_keys, recipients
from sealmail.tenancy.keyring import Keyring

FORMAT = "sealmail-proof-of-delivery/1"
# SecureLine names the key it chose as "0x<first 16 hex digits>…" (domain.secureline.KeyFact.short).
_SHORT_KEY = re.compile(r"\b0x([0-9A-Fa-f]{8,128})")


class Proofs:
    def __init__(
        self, engine: Engine, keyring: Keyring, keys: EvidenceKeys, tsa: Timestamper | None = None
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.keys = keys
        self.tsa = tsa

    def issue(self, tenant_id: str, message_id: str, recipient_id: str, actor: str) -> dict[str, Any]:
        """The signed proof for one delivered recipient (404 elsewhere, 409 if not delivered)."""
        key = self.keys.tenant(tenant_id)
        with db.reader(self.engine) as conn:
            msg, rcpt, attempt = self._facts(conn, tenant_id, message_id, recipient_id)
            body = self._body(conn, tenant_id, msg, rcpt, attempt)
        with self.engine.begin() as conn:
            # Audited first, so the proof carries its own issuance's sequence number.
            audit.append(
                conn,
                action=AuditAction.PROOF_ISSUED,
                actor=actor,
                tenant_id=tenant_id,
                target=recipient_id,
                details={"message_id": message_id},
            )
            body["audit"]["issued_seq"] = _last_seq(conn, tenant_id, recipient_id)
        doc = signed.sign(FORMAT, body, key)
        return self.tsa.stamp(doc) if self.tsa is not None else doc

    def delivered(self, tenant_id: str, message_id: str) -> list[str]:
        """Ids of the message's delivered recipients (404 for a message not of this tenant)."""
        with db.reader(self.engine) as conn:
            exists = conn.execute(
                sa.select(messages.c.id).where(messages.c.id == message_id, messages.c.tenant_id == tenant_id)
            ).first()
            if exists is None:
                raise NotFound(f"message {message_id} not found")
            return list(
                conn.execute(
                    sa.select(recipients.c.id)
                    .where(
                        recipients.c.message_id == message_id,
                        recipients.c.tenant_id == tenant_id,
                        recipients.c.status == RecipientStatus.DELIVERED,
                    )
                    .order_by(recipients.c.id)
                ).scalars()
            )

    def _facts(
        self, conn: Connection, tenant_id: str, message_id: str, recipient_id: str
    ) -> tuple[Any, Any, Any]:
        msg = conn.execute(
            sa.select(messages).where(messages.c.id == message_id, messages.c.tenant_id == tenant_id)
        ).first()
        rcpt = conn.execute(
            sa.select(recipients).where(
                recipients.c.id == recipient_id,
                recipients.c.message_id == message_id,
                recipients.c.tenant_id == tenant_id,
            )
        ).first()
        if msg is None or rcpt is None:
            raise NotFound(f"recipient {recipient_id} of message {message_id} not found")
        if rcpt.status != RecipientStatus.DELIVERED:
            raise Conflict(f"recipient {recipient_id} is {rcpt.status}: there is no delivery to prove yet")
        attempt = conn.execute(
            sa.select(attempts)
            .where(
                attempts.c.recipient_id == recipient_id,
                attempts.c.tenant_id == tenant_id,
                attempts.c.status == AttemptStatus.DELIVERED,
            )
            .order_by(attempts.c.finished_at.desc())
            .limit(1)
        ).first()
        if attempt is None:
            raise Conflict(f"recipient {recipient_id} has no recorded delivery attempt")
        return msg, rcpt, attempt

    def _body(self, conn: Connection, tenant_id: str, msg: Any, rcpt: Any, a: Any) -> dict[str, Any]:
        accepted_seq = conn.execute(
            sa.select(sa.func.min(audit_log.c.seq)).where(
                audit_log.c.tenant_id == tenant_id,
                audit_log.c.target == msg.id,
                audit_log.c.action == str(AuditAction.MESSAGE_ACCEPTED),
            )
        ).scalar()
        return {
            "tenant_id": tenant_id,
            "message_id": msg.id,
            "message_id_header": msg.message_id_header,
            "recipient_id": rcpt.id,
            "recipient": rcpt.address,
            "accepted_at": _iso(msg.created_at),
            "delivered_at": _iso(a.finished_at),
            "issued_at": _iso(datetime.now(UTC)),
            "sha256": {"accepted": self._accepted_hash(tenant_id, msg), "sent": a.sent_sha256},
            "method": {
                "name": rcpt.method,
                "reason": rcpt.method_reason,
                "key": _key(conn, tenant_id, rcpt, a),
            },
            "transport": {
                "mx_host": a.mx_host,
                "mx_ip": a.mx_ip,
                "tls_version": a.tls_version,
                "tls_cipher": a.tls_cipher,
                "certificate_sha256": a.peer_cert_sha256,
                "certificate_verified": bool(a.tls_verified),
                # none | pkix | mta-sts | dane: what vouched for the certificate.
                "verified_by": a.verified_by,
            },
            "remote": {"code": a.smtp_code, "enhanced": a.enhanced_code, "reply": a.reply},
            "audit": {"accepted_seq": accepted_seq, "issued_seq": None},
        }

    def _accepted_hash(self, tenant_id: str, msg: Any) -> str | None:
        if msg.wrapped_data_key is None or msg.tenant_key_id is None:
            return None  # crypto-shredded: the hash can no longer be computed
        raw = self.keyring.open(tenant_id, msg.id, msg.tenant_key_id, msg.wrapped_data_key, msg.content)
        return signed.sha256_hex(raw)


def _key(conn: Connection, tenant_id: str, rcpt: Any, attempt: Any) -> dict[str, Any] | None:
    """The recipient key a PGP or S/MIME delivery used: full fingerprint and where it came from.

    Recorded on the attempt since the trail needed it; older attempts fall back to the key
    directory, matched by the short fingerprint SecureLine's reason names."""
    if rcpt.method not in ("pgp", "smime"):
        return None
    if attempt.key_fingerprint:
        return {"fingerprint": attempt.key_fingerprint, "source": attempt.key_source}
    found = _SHORT_KEY.search(rcpt.method_reason or "")
    if found is None:
        return None
    row = conn.execute(
        sa.select(recipient_keys.c.fingerprint, recipient_keys.c.source).where(
            recipient_keys.c.tenant_id == tenant_id,
            recipient_keys.c.kind == rcpt.method,
            recipient_keys.c.address == rcpt.address.lower(),
            sa.func.upper(recipient_keys.c.fingerprint).startswith(found.group(1).upper()),
        )
    ).first()
    if row is None:
        return {"fingerprint_prefix": found.group(1).upper(), "source": None}
    return {"fingerprint": row.fingerprint, "source": row.source}


def _last_seq(conn: Connection, tenant_id: str, target: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.max(audit_log.c.seq)).where(
                audit_log.c.tenant_id == tenant_id,
                audit_log.c.target == target,
                audit_log.c.action == str(AuditAction.PROOF_ISSUED),
            )
        ).scalar_one()
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")
