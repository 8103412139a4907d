"""The append-only, hash-chained audit log (HIPAA §164.312(b) audit controls).

Each entry's hash covers its own fields and the previous entry's hash, and a one-row head
table holds the last sequence number and hash.  Editing an entry breaks its hash;
deleting or inserting one breaks the chain of ``prev_hash`` links or the sequence; cutting
entries off the end disagrees with the head.  ``verify`` reports the first such entry.
"""

from __future__ import annotations

import enum
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import audit_head, audit_log

GENESIS = "0" * 64


class AuditAction(enum.StrEnum):
    """Every audit name, ``object:verb`` (warehouse ``events/tags.py`` grammar).

    One enum for the whole product, so a stored name is found in one place and two
    features cannot spell the same action two ways.
    """

    MESSAGE_ACCEPTED = "message:accepted"
    MESSAGE_CANCELLED = "message:cancelled"
    MESSAGE_CONTENT_READ = "message:content_read"
    TENANT_CREATED = "tenant:created"
    TENANT_SETTINGS_CHANGED = "tenant:settings_changed"
    DOMAIN_ADDED = "domain:added"
    DOMAIN_VERIFIED = "domain:verified"
    API_KEY_CREATED = "api_key:created"
    API_KEY_REVOKED = "api_key:revoked"
    API_KEY_REJECTED = "api_key:rejected"
    SMTP_CREDENTIAL_CREATED = "smtp_credential:created"
    SMTP_CREDENTIAL_REVOKED = "smtp_credential:revoked"
    SMTP_AUTH_FAILED = "smtp_credential:auth_failed"
    MASTER_KEY_ROTATED = "master_key:rotated"
    TENANT_KEY_CREATED = "tenant_key:created"
    TENANT_KEY_ROTATED = "tenant_key:rotated"
    CONFIG_CHANGED = "config:changed"
    RECIPIENT_KEY_ADDED = "recipient_key:added"
    RECIPIENT_KEY_DELETED = "recipient_key:deleted"
    TENANT_IDENTITY_CREATED = "tenant_identity:created"
    MESSAGE_QUARANTINED = "message:quarantined"
    MESSAGE_RELEASED = "message:released"
    MESSAGE_BLOCKED = "message:blocked"
    # RFC 8689 §5: a message arrived with "TLS-Required: No" (patient-requested relaxed delivery).
    MESSAGE_TLS_RELAXATION_REQUESTED = "message:tls_relaxation_requested"
    ARCHIVE_KEY_EXPORTED = "archive_key:exported"

    # files
    FILE_UPLOADED = "file:uploaded"
    FILE_UPLOAD_ABORTED = "file:upload_aborted"
    FILE_SENT = "file:sent"
    FILE_DOWNLOADED = "file:downloaded"
    FILE_DELETED = "file:deleted"
    # templates and bulk sends
    TEMPLATE_CREATED = "template:created"
    TEMPLATE_VERSION_CREATED = "template:version_created"
    TEMPLATE_DELETED = "template:deleted"
    BULK_JOB_STARTED = "bulk_job:started"
    BULK_JOB_FINISHED = "bulk_job:finished"
    # webhooks
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint:created"
    WEBHOOK_ENDPOINT_UPDATED = "webhook_endpoint:updated"
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint:deleted"
    WEBHOOK_ENDPOINT_SECRET_ROTATED = "webhook_endpoint:secret_rotated"  # noqa: S105  # a name, not a secret
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint:disabled"  # by the dispatcher (410, sustained failure)
    WEBHOOK_ENDPOINT_TESTED = "webhook_endpoint:tested"
    WEBHOOK_DELIVERY_REPLAYED = "webhook_delivery:replayed"
    WEBHOOK_ENDPOINT_REPLAYED = "webhook_endpoint:replayed"  # everything since a time
    # suppressions
    SUPPRESSION_CREATED = "suppression:created"
    SUPPRESSION_UPDATED = "suppression:updated"
    SUPPRESSION_REMOVED = "suppression:removed"
    SUPPRESSIONS_BYPASSED = "message:suppressions_bypassed"
    # portal
    PORTAL_SIGNED_IN = "portal:signed_in"
    PORTAL_SIGN_IN_FAILED = "portal:sign_in_failed"
    PORTAL_LOCKED_OUT = "portal:locked_out"
    PORTAL_CODE_SENT = "portal:code_sent"
    PORTAL_CODE_REFUSED = "portal:code_refused"
    PORTAL_VIEWED = "portal:viewed"
    PORTAL_ATTACHMENT_DOWNLOADED = "portal:attachment_downloaded"
    PORTAL_REPLIED = "portal:replied"
    PORTAL_RECALLED = "portal:recalled"
    PORTAL_EXPIRED = "portal:expired"
    PORTAL_SHREDDED = "portal:shredded"
    PORTAL_SETTINGS_CHANGED = "portal:settings_changed"
    # The tenant's ``secureline.portal_weak_notice`` changed; ``loosened`` says whether
    # sign-in codes may now travel below a message's required TLS level.
    PORTAL_WEAK_NOTICE_POLICY_CHANGED = "portal:weak_notice_policy_changed"
    # console users (issue 14)
    USER_INVITED = "user:invited"
    USER_LINK_ISSUED = "user:link_issued"
    USER_ENROLLED = "user:enrolled"
    USER_SIGNED_IN = "user:signed_in"
    USER_SIGNIN_FAILED = "user:signin_failed"
    USER_LOCKED = "user:locked"
    USER_SIGNED_OUT = "user:signed_out"
    USER_RECOVERY_CODE_USED = "user:recovery_code_used"
    USER_ROLE_CHANGED = "user:role_changed"
    USER_DISABLED = "user:disabled"
    USER_PASSKEY_ADDED = "user:passkey_added"
    USER_PASSKEY_REMOVED = "user:passkey_removed"
    USER_SSO_LINKED = "user:sso_linked"
    USER_SSO_REFUSED = "user:sso_refused"
    # The OP vouched for the person without reporting MFA: the console's own factor is asked.
    USER_SSO_SECOND_FACTOR = "user:sso_second_factor"
    SSO_CONFIGURED = "sso:configured"
    USER_BREAK_GLASS_CHANGED = "user:break_glass_changed"
    EMERGENCY_ACCESS_GRANTED = "emergency_access:granted"
    EMERGENCY_ACCESS_USED = "emergency_access:used"
    EMERGENCY_ACCESS_ENDED = "emergency_access:ended"
    # evidence (issue 15) and TLS reporting (RFC 8460)
    TLSRPT_SENT = "tlsrpt:sent"
    TLSRPT_RECEIVED = "tlsrpt:received"
    EVIDENCE_KEY_CREATED = "evidence_key:created"
    PROOF_ISSUED = "proof:issued"
    AUDIT_ANCHORED = "audit:anchored"
    REPORT_EXPORTED = "report:exported"
    # the console's tenant pages (issue 14)
    DECISION_RECORDED = "decision:recorded"  # a protective setting weakened, with its reason
    AUDIT_EXPORTED = "audit:exported"
    RETENTION_POLICY_SET = "retention_policy:set"
    LEGAL_HOLD_PLACED = "legal_hold:placed"
    LEGAL_HOLD_RELEASED = "legal_hold:released"
    # One entry per message whose content was crypto-shredded (or metadata pseudonymised).
    RETENTION_PURGED = "retention:purged"
    # One per purge run and tenant: what it did, what holds kept, what the policy was.
    RETENTION_RUN = "retention:run"
    PLAIN_REQUESTED = "plain_request:requested"
    PLAIN_WARNED = "plain_request:warned"
    PLAIN_CONFIRMED = "plain_request:confirmed"
    PLAIN_REVOKED = "plain_request:revoked"
    # A patient's confidential-communication preference (164.522(b)), recorded or revoked.
    COMMS_PREFERENCE_RECORDED = "comms_preference:recorded"
    COMMS_PREFERENCE_REVOKED = "comms_preference:revoked"
    EVIDENCE_PACK_BUILT = "evidence_pack:built"
    ANCHOR_RECIPIENTS_SET = "anchor_recipients:set"
    ANCHOR_MAILED = "audit_anchor:mailed"
    EVIDENCE_ALERT_MAILED = "evidence_alert:mailed"  # e.g. a failed restore drill, to the officers
    ACTIVITY_REVIEW_SIGNED = "activity_review:signed"
    WORKING_HOURS_SET = "working_hours:set"
    BACKUP_CREATED = "backup:created"
    BACKUP_RESTORED = "backup:restored"
    BACKUP_DRILL = "backup:drill"  # a timed restore into a scratch database: RPO and RTO
    # secure marketing (issue 16): contacts, consent, segments, campaigns, journeys
    MKT_ATTRIBUTE_DEFINED = "mkt_attribute:defined"
    MKT_CONTACT_SAVED = "mkt_contact:saved"
    MKT_CONTACT_REVEALED = "mkt_contact:revealed"  # an operator shown clinical/sensitive values
    MKT_CONTACTS_IMPORTED = "mkt_contacts:imported"
    MKT_CONTACTS_EXPORTED = "mkt_contacts:exported"
    MKT_LIST_CREATED = "mkt_list:created"
    MKT_LIST_MEMBERS_ADDED = "mkt_list:members_added"
    MKT_LIST_MEMBERS_REMOVED = "mkt_list:members_removed"
    MKT_CONSENT_RECORDED = "mkt_consent:recorded"
    MKT_AUTHORIZATION_RECORDED = "mkt_authorization:recorded"
    # A compliance read of a contact's stored authorizations (ids listed, never their text).
    MKT_AUTHORIZATIONS_READ = "mkt_authorization:read"
    MKT_SEGMENT_SAVED = "mkt_segment:saved"
    MKT_SEGMENT_EVALUATED = "mkt_segment:evaluated"
    MKT_CAP_SET = "mkt_cap:set"
    MKT_CAMPAIGN_CREATED = "mkt_campaign:created"
    MKT_CAMPAIGN_STARTED = "mkt_campaign:started"
    MKT_CAMPAIGN_FINISHED = "mkt_campaign:finished"
    MKT_CAMPAIGN_PAUSED = "mkt_campaign:paused"
    MKT_CAMPAIGN_RESUMED = "mkt_campaign:resumed"
    MKT_CAMPAIGN_CANCELLED = "mkt_campaign:cancelled"
    MKT_CONVERSION_RECORDED = "mkt_conversion:recorded"
    MKT_JOURNEY_SAVED = "mkt_journey:saved"
    MKT_JOURNEY_PAUSED = "mkt_journey:paused"
    MKT_JOURNEY_RESUMED = "mkt_journey:resumed"
    MKT_JOURNEY_ACTIVATED = "mkt_journey:activated"
    MKT_JOURNEY_DEACTIVATED = "mkt_journey:deactivated"
    MKT_ENROLLED = "mkt_journey:enrolled"
    # secure forms (issue 17)
    FORM_CREATED = "form:created"
    FORM_VERSION_CREATED = "form:version_created"
    FORM_ARCHIVED = "form:archived"
    FORM_SUBMITTED = "form_submission:received"
    FORM_SUBMISSION_DELIVERED = "form_submission:delivered"
    FORM_SUBMISSION_HELD = "form_submission:held"
    FORM_SUBMISSION_READ = "form_submission:read"
    FORM_SUBMISSION_COPIED = "form_submission:copied"
    # secure texting (issue 17): every text, provider reply, receipt and keyword
    SMS_SENDER_ADDED = "sms_sender:added"
    SMS_CONTACT_CHANGED = "sms_contact:changed"
    SMS_SCHEDULED = "sms:scheduled"
    SMS_SENT = "sms:sent"
    SMS_FAILED = "sms:failed"
    SMS_REFUSED = "sms:refused"
    SMS_RECEIPT = "sms:receipt"
    SMS_INBOUND = "sms:inbound"
    SMS_OPTED_OUT = "sms:opted_out"
    SMS_OPTED_IN = "sms:opted_in"


def _digest(prev_hash: str, row: dict[str, Any]) -> str:
    return digest_of(prev_hash, {**row, "at": at_text(row["at"])})


def _json_text(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def canonical_details(details: dict[str, Any]) -> str:
    """An entry's details as its hash covers them, and as ``append_many`` stores them."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"))


def _appended_digest(prev_hash: str, row: dict[str, Any], at: str, details: str) -> str:
    """``digest_of`` for a row ``append_many`` builds, without building a dict to sort.

    The body is written in ``digest_of``'s key order with the encoder ``json.dumps`` uses
    for it (ASCII-escaped strings, compact separators; ``details`` already in that form), so
    it is byte for byte the same text (``tests/unit/test_audit_digest.py`` compares them)
    and ``verify`` re-hashes it with ``digest_of``.
    """
    body = (
        f'{{"action":{_json_text(row["action"])},"actor":{_json_text(row["actor"])},'
        f'"at":{_json_text(at)},"details":{details},"id":{_json_text(row["id"])},'
        f'"seq":{int(row["seq"])},"target":{_json_text(row["target"])},'
        f'"tenant_id":{_json_text(row["tenant_id"])}}}'
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def at_text(at: datetime) -> str:
    """An entry's time as its hash covers it (and as exports carry it)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def digest_of(prev_hash: str, row: dict[str, Any]) -> str:
    """An entry's chain hash from its fields, ``at`` already as ``at_text``: pure, so an
    exported entry is re-hashed offline (``sealmail audit verify FILE``)."""
    body = json.dumps(
        {
            "seq": row["seq"],
            "id": row["id"],
            "tenant_id": row["tenant_id"],
            "at": row["at"],
            "actor": row["actor"],
            "action": row["action"],
            "target": row["target"],
            "details": row["details"],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(
    conn: Connection,
    *,
    action: AuditAction,
    actor: str,
    tenant_id: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    """Append an entry inside the caller's transaction; returns its id.

    The head row is locked first (``FOR UPDATE`` on PostgreSQL; SQLite's write
    transactions are already exclusive), so concurrent appends serialize.
    """
    [entry_id] = append_many(conn, [Entry(action, actor, tenant_id, target, details)])
    return entry_id


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry to append, as ``append`` takes it."""

    action: AuditAction
    actor: str
    tenant_id: str | None = None
    target: str | None = None
    details: dict[str, Any] | None = None


# Built once: every accepted batch appends, and building these per call cost more CPU
# than executing them.
_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_INSERT = db.RowInsert(audit_log, encoded=frozenset({"details"}))
_MOVE_HEAD = (
    sa.update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=sa.bindparam("b_seq"), hash=sa.bindparam("b_hash"))
)
# The same move, only from the head the caller expects: the row lock and the check in one
# statement (PostgreSQL re-checks the WHERE on the newest row after waiting for its lock).
# Run on the driver's cursor (``db.DriverStatement``): once per commit batch.
_MOVE_FROM = db.DriverStatement(
    sa.update(audit_head)
    .where(
        audit_head.c.id == 1,
        audit_head.c.seq == sa.bindparam("b_from_seq"),
        audit_head.c.hash == sa.bindparam("b_from_hash"),
    )
    .values(seq=sa.bindparam("b_seq"), hash=sa.bindparam("b_hash"))
)

# The head this process last wrote, per database: the next append's guess.  Only a guess:
# ``_MOVE_FROM`` moves the head only if it is still there, else the append reads the head
# under its lock as before.  Right (the usual case for one busy writer process), an append
# costs two statements instead of three; wrong (another process appended, or the
# transaction that wrote it rolled back), one more than before.
# Keyed by the engine's URL (rendering it as text for a key cost more than the lookup).
_last_heads: dict[sa.URL, tuple[int, str]] = {}
_last_heads_lock = threading.Lock()


def append_many(conn: Connection, entries: Sequence[Entry]) -> list[str]:
    """Append several entries, chained in the given order, inside the caller's transaction.

    The same chain ``append`` builds one at a time, with one head lock, one multi-row
    insert and one head update for the lot — what a batch of accepted messages needs.
    """
    if not entries:
        return []
    appended = append_on_guess(conn, entries)
    if appended is not None:
        return appended
    head = conn.execute(_HEAD).first()
    if head is None:
        conn.execute(sa.insert(audit_head).values(id=1, seq=0, hash=GENESIS))
        prev_seq, prev_hash = 0, GENESIS
    else:
        prev_seq, prev_hash = int(head.seq), str(head.hash)
    rows = _chained(entries, prev_seq, prev_hash)
    conn.execute(_MOVE_HEAD, {"b_seq": rows[-1]["seq"], "b_hash": rows[-1]["hash"]})
    return _inserted(conn, rows)


def append_on_guess(conn: Connection, entries: Sequence[Entry]) -> list[str] | None:
    """``append_many`` from the head this process last wrote, or None (nothing written) when
    it has none or the head has moved since: then ``append_many`` reads the head.

    Runs inside ``store.db.pipelined`` too (an intake batch's): the head's move is synced
    there, its check needing the row count, and the rows are queued with the batch's.
    """
    if not entries:
        return []
    guess = _last_heads.get(conn.engine.url)
    if guess is None:
        return None
    rows = _chained(entries, *guess)
    moved = _MOVE_FROM(
        conn,
        {
            "b_from_seq": guess[0],
            "b_from_hash": guess[1],
            "b_seq": rows[-1]["seq"],
            "b_hash": rows[-1]["hash"],
        },
    )
    if moved != 1:
        with _last_heads_lock:  # wrong: ``append_many`` reads the head, no second try
            _last_heads.pop(conn.engine.url, None)
        return None
    return _inserted(conn, rows)


def _inserted(conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    _INSERT(conn, rows)
    with _last_heads_lock:
        _last_heads[conn.engine.url] = (rows[-1]["seq"], rows[-1]["hash"])
    return [str(r["id"]) for r in rows]


def _chained(entries: Sequence[Entry], prev_seq: int, prev_hash: str) -> list[dict[str, Any]]:
    """The rows of ``entries`` following the head (``prev_seq``, ``prev_hash``)."""
    rows: list[dict[str, Any]] = []
    for entry in entries:
        at = datetime.now(UTC)
        row: dict[str, Any] = {
            "seq": prev_seq + 1,
            "id": new_id("aud"),
            "tenant_id": entry.tenant_id,
            "at": at,
            "actor": entry.actor,
            "action": str(entry.action),
            "target": entry.target,
            # Encoded once, for the hash and for the column (the JSON the hash covers).
            "details": canonical_details(entry.details or {}),
            "prev_hash": prev_hash,
        }
        row["hash"] = _appended_digest(prev_hash, row, at_text(at), row["details"])
        rows.append(row)
        prev_seq, prev_hash = row["seq"], row["hash"]
    return rows


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify(engine: Engine, progress: Any = None) -> VerifyResult:
    """Walk the chain in order; report the first edited, inserted or deleted entry."""
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    with db.reader(engine) as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
        for row in _rows(conn):
            if row["seq"] != expected_seq:
                kind = "deleted" if row["seq"] > expected_seq else "inserted"
                return VerifyResult(False, checked, expected_seq, f"entry {expected_seq} {kind}")
            if row["prev_hash"] != expected_prev:
                return VerifyResult(
                    False, checked, row["seq"], f"entry {row['seq']} does not follow its predecessor"
                )
            if _digest(row["prev_hash"], row) != row["hash"]:
                return VerifyResult(False, checked, row["seq"], f"entry {row['seq']} was edited")
            expected_prev = row["hash"]
            expected_seq += 1
            checked += 1
            if progress is not None:
                progress(1)
    last_seq = expected_seq - 1
    if head is None:
        if checked:
            return VerifyResult(False, checked, 1, "audit head is missing")
        return VerifyResult(True, 0)
    if int(head.seq) != last_seq or str(head.hash) != expected_prev:
        return VerifyResult(
            False, checked, last_seq + 1, f"entries after {last_seq} were deleted (head at {head.seq})"
        )
    return VerifyResult(True, checked)


def count(engine: Engine) -> int:
    with db.reader(engine) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())


def _rows(conn: Connection) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        batch = (
            conn.execute(
                sa.select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(1000)
            )
            .mappings()
            .all()
        )
        if not batch:
            return
        for row in batch:
            yield dict(row)
        last = int(batch[-1]["seq"])
