"""A public form post, from the wire to the tenant's recipients.

1. The time-token (``timetoken``) and the fields (``checking``) are checked: outcomes a
   submitter can cause are values (``Outcome``), never exceptions.
2. The record — the JSON document and the files — is sealed under a data key of its own
   and stored with the token's nonce (unique: a served page posts once), audited.
3. It is delivered as a normal secure message on the ``phi`` stream through the accept
   path, so SecureLine picks PGP, S/MIME or the portal per recipient: the readable text
   as the body, ``submission.json`` and ``submission.pdf`` and the uploads attached.  An
   idempotency key per submission makes a retried delivery one message.
4. The delivered submission becomes a ``form.submitted`` event on that message (the
   webhook outbox signs and sends it) and an audit entry.

When the accept path refuses (a DLP rule, a sender no longer verified) the submission
stays stored as ``held`` with the reason, and the submitter still gets the receipt:
what they sent is safe with the organisation, which sees the hold in the listing.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound, SealmailError
from sealmail.forms import rendering, timetoken
from sealmail.forms.checking import Signer, Upload, check
from sealmail.forms.definition import FormDefinition
from sealmail.forms.delivery import build_copy, build_message
from sealmail.forms.service import Forms
from sealmail.forms.states import FormStatus, SubmissionStatus
from sealmail.forms.tables import form_submissions, forms
from sealmail.ids import new_id
from sealmail.messages.service import Idempotency, Messages, Submission
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Principal

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


class OutcomeStatus(enum.StrEnum):
    RECEIVED = "received"  # stored (and delivered, or held with a reason)
    INVALID = "invalid"  # field errors: show the form again
    REFUSED = "refused"  # the token failed: show the form again with a fresh token


@dataclass(frozen=True, slots=True)
class PublicForm:
    form_id: str
    tenant_id: str
    version: int
    definition: FormDefinition
    organization: str


@dataclass(frozen=True, slots=True)
class Outcome:
    status: OutcomeStatus
    errors: dict[str, str] = field(default_factory=dict)
    receipt: str | None = None
    why: str = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    reference: str
    organization: str
    title: str
    message: str
    received_at: datetime
    digest: str


@dataclass(frozen=True, slots=True)
class Search:
    """The console's filters over submission facts: status and a received-at window."""

    status: SubmissionStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    submission_id: str | None = None

    def clauses(self) -> list[Any]:
        c = form_submissions.c
        out: list[Any] = []
        if self.status:
            out.append(c.status == self.status)
        if self.submission_id:
            out.append(c.id == self.submission_id)
        if self.since is not None:
            out.append(c.received_at >= self.since)
        if self.until is not None:
            out.append(c.received_at < self.until)
        return out


class ConsentLedger(Protocol):
    """Where a ticked consent box with a purpose is recorded (marketing's ``FormConsent``)."""

    def prepare(self, tenant_id: str) -> None: ...
    def record(
        self, conn: Connection, tenant_id: str, email: str, purpose: str, evidence: str, actor: str
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class Grant:
    email: str
    purpose: str
    evidence: str


def grants(form: PublicForm, answers: Mapping[str, Any]) -> list[Grant]:
    """The consents this submission gives: ticked boxes with a purpose, by the first email."""
    d = form.definition
    email = next((str(answers[f.name]) for f in d.fields if f.type == "email" and answers.get(f.name)), "")
    out = []
    for f in d.fields:
        given = answers.get(f.name)
        if f.type == "consent" and f.purpose is not None and isinstance(given, dict) and email:
            statement = hashlib.sha256(f.text.encode()).hexdigest()
            evidence = f"form {form.form_id} v{form.version} field {f.name}; statement sha256 {statement}"
            out.append(Grant(email, str(f.purpose), evidence))
    return out


class FormSubmissions:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        messages: Messages,
        forms_service: Forms,
        token_key: Callable[[], bytes],
        message_id_domain: str,
        clock: Clock | None = None,
        consent: ConsentLedger | None = None,
    ) -> None:
        self.consent = consent
        self.engine = engine
        self.keyring = keyring
        self.messages = messages
        self.forms = forms_service
        self.token_key = token_key
        self.message_id_domain = message_id_domain
        self.now: Clock = clock or (lambda: datetime.now(UTC))

    # -- the public page ---------------------------------------------------------------------
    def public(self, form_id: str) -> PublicForm | None:
        """The current version of an active form, or None (unknown and archived alike)."""
        with db.reader(self.engine) as conn:
            row = conn.execute(sa.select(forms).where(forms.c.id == form_id)).first()
            if row is None or row.status != FormStatus.ACTIVE:
                return None
            definition = self.forms.definition(conn, row.tenant_id, row.id, row.current_version)
        organization = str(self.forms.tenancy.get_tenant(row.tenant_id).name)
        return PublicForm(row.id, row.tenant_id, int(row.current_version), definition, organization)

    def token(self, form_id: str) -> str:
        return timetoken.issue(self.token_key(), form_id, self.now().timestamp())

    # -- submitting --------------------------------------------------------------------------
    def submit(
        self,
        form: PublicForm,
        token: str,
        values: Mapping[str, Sequence[str]],
        uploads: Mapping[str, Sequence[Upload]],
        client_address: str,
    ) -> Outcome:
        d = form.definition
        now = self.now()
        tok = timetoken.check(
            self.token_key(), form.form_id, token, now.timestamp(), d.min_fill_seconds, d.token_ttl_seconds
        )
        if tok.problem is not None:
            log.info("form_refused form=%s reason=%s", form.form_id, tok.problem)
            return Outcome(OutcomeStatus.REFUSED, why=str(tok.problem))
        checked = check(d, values, uploads, Signer(now, client_address))
        if not checked.ok:
            return Outcome(OutcomeStatus.INVALID, errors=checked.errors)
        sid = new_id("fsub")
        facts = rendering.SubmissionFacts(sid, form.form_id, form.version, now, form.organization)
        doc = rendering.document(facts, d, checked.answers)
        record = rendering.to_json(doc)
        sealed_body = json.dumps(
            {
                "document": doc,
                "files": [
                    {
                        "field": f.field,
                        "filename": f.filename,
                        "media_type": f.media_type,
                        "data": base64.b64encode(f.data).decode(),
                    }
                    for f in checked.files
                ],
            }
        ).encode()
        key_id, wrapped, blob = self.keyring.seal(form.tenant_id, sid, sealed_body)
        digest = hashlib.sha256(record).hexdigest()
        given = grants(form, checked.answers) if self.consent is not None else []
        if self.consent is not None and given:
            self.consent.prepare(form.tenant_id)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(form_submissions).values(
                        id=sid,
                        tenant_id=form.tenant_id,
                        form_id=form.form_id,
                        version=form.version,
                        received_at=now,
                        token_nonce=tok.nonce[:64],
                        size=len(sealed_body),
                        file_count=len(checked.files),
                        digest=digest,
                        key_id=key_id,
                        wrapped_key=wrapped,
                        content=blob,
                        status=SubmissionStatus.RECEIVED,
                    )
                )
                audit.append(
                    conn,
                    action=AuditAction.FORM_SUBMITTED,
                    actor=f"form:{form.form_id}",
                    tenant_id=form.tenant_id,
                    target=sid,
                    details={
                        "form_id": form.form_id,
                        "version": form.version,
                        "files": len(checked.files),
                        "size": len(sealed_body),
                        "digest": digest,
                    },
                )
                # In the submission's transaction: the grant and the record stand or fall together.
                for g in given:
                    self._grant(conn, form, g)
        except IntegrityError:
            # The nonce was used already: a replayed page (or a double click after success).
            return Outcome(OutcomeStatus.REFUSED, why="used")
        try:
            self.deliver(form.tenant_id, sid)
        except Exception:
            log.exception("form_delivery_failed form=%s submission=%s", form.form_id, sid)
        return Outcome(OutcomeStatus.RECEIVED, receipt=self.reference(sid))

    def _grant(self, conn: Connection, form: PublicForm, g: Grant) -> None:
        if self.consent is not None:
            self.consent.record(conn, form.tenant_id, g.email, g.purpose, g.evidence, f"form:{form.form_id}")

    def deliver_pending(self, older_than: timedelta = timedelta(minutes=1), limit: int = 100) -> int:
        """Deliver submissions stored but never delivered (the process stopped between the
        two steps); the idempotency key keeps a retried one to one message."""
        cutoff = self.now() - older_than
        c = form_submissions.c
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(c.tenant_id, c.id)
                .where(c.status == SubmissionStatus.RECEIVED, c.received_at <= cutoff)
                .limit(limit)
            ).all()
        return sum(1 for r in rows if self.deliver(r.tenant_id, r.id) is not None)

    def deliver(self, tenant_id: str, submission_id: str) -> str | None:
        """Deliver a stored submission as a secure message; the message id, or None if held."""
        with db.reader(self.engine) as conn:
            row = self._submission(conn, tenant_id, submission_id)
            definition = self.forms.definition(conn, tenant_id, row.form_id, row.version)
        if not row.wrapped_key:
            return None  # shredded under retention: nothing is left to deliver
        stored = json.loads(self.keyring.open(tenant_id, row.id, row.key_id, row.wrapped_key, row.content))
        organization = str(self.forms.tenancy.get_tenant(tenant_id).name)
        sub = build_message(definition, stored, organization, self.message_id_domain)
        who = Principal(tenant_id, f"form:{row.form_id}", frozenset({"send"}))
        idem = Idempotency(f"form-submission:{row.id}", hashlib.sha256(row.id.encode()).hexdigest())
        try:
            accepted, _ = self.messages.submit(who, sub, idem)
        except SealmailError as exc:
            self._held(tenant_id, row, f"{type(exc).__name__}: {exc.detail}"[:200])
            return None
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(form_submissions)
                .where(form_submissions.c.id == row.id, form_submissions.c.tenant_id == tenant_id)
                .values(status=SubmissionStatus.DELIVERED, status_reason=None, message_id=accepted.id)
            )
            ev.emit(
                conn,
                tenant_id=tenant_id,
                message_id=accepted.id,
                type_=ev.EventType.FORM_SUBMITTED,
                recipient_id=None,
                recipient=None,
                data={
                    "form_id": row.form_id,
                    "form_version": row.version,
                    "submission_id": row.id,
                    "digest": row.digest,
                    "files": row.file_count,
                },
            )
            audit.append(
                conn,
                action=AuditAction.FORM_SUBMISSION_DELIVERED,
                actor=f"form:{row.form_id}",
                tenant_id=tenant_id,
                target=row.id,
                details={"message_id": accepted.id, "recipients": len(definition.recipients)},
            )
        self._copy(tenant_id, row, build_copy(definition, stored, organization, self.message_id_domain))
        return accepted.id

    def _copy(self, tenant_id: str, row: Any, copy: Submission | None) -> None:
        """The submitter's copy through the portal; its failure never undoes the delivery."""
        if copy is None:
            return
        who = Principal(tenant_id, f"form:{row.form_id}", frozenset({"send"}))
        idem = Idempotency(f"form-copy:{row.id}", hashlib.sha256(f"copy|{row.id}".encode()).hexdigest())
        try:
            accepted, _ = self.messages.submit(who, copy, idem)
        except SealmailError as exc:
            log.warning("form_copy_refused submission=%s error=%s", row.id, type(exc).__name__)
            return
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.FORM_SUBMISSION_COPIED,
                actor=f"form:{row.form_id}",
                tenant_id=tenant_id,
                target=row.id,
                details={"message_id": accepted.id, "method": "portal"},
            )

    def _held(self, tenant_id: str, row: Any, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(form_submissions)
                .where(form_submissions.c.id == row.id, form_submissions.c.tenant_id == tenant_id)
                .values(status=SubmissionStatus.HELD, status_reason=reason)
            )
            audit.append(
                conn,
                action=AuditAction.FORM_SUBMISSION_HELD,
                actor=f"form:{row.form_id}",
                tenant_id=tenant_id,
                target=row.id,
                details={"reason": reason},
            )

    # -- receipts ----------------------------------------------------------------------------
    def _mac(self, submission_id: str) -> str:
        return hmac.new(self.token_key(), f"receipt|{submission_id}".encode(), hashlib.sha256).hexdigest()[
            :24
        ]

    def reference(self, submission_id: str) -> str:
        """The receipt's opaque reference: unguessable, so receipts cannot be enumerated."""
        return f"{submission_id}.{self._mac(submission_id)}"

    def receipt(self, reference: str) -> Receipt | None:
        sid, _, mac = reference.partition(".")
        if len(reference) > 100 or not mac or not hmac.compare_digest(self._mac(sid), mac):
            return None
        with db.reader(self.engine) as conn:
            row = conn.execute(sa.select(form_submissions).where(form_submissions.c.id == sid)).first()
            if row is None:
                return None
            d = self.forms.definition(conn, row.tenant_id, row.form_id, row.version)
        organization = str(self.forms.tenancy.get_tenant(row.tenant_id).name)
        return Receipt(sid, organization, d.title, d.receipt_message, row.received_at, row.digest)

    # -- the tenant's view -------------------------------------------------------------------
    def _submission(self, conn: Any, tenant_id: str, submission_id: str) -> Any:
        row = conn.execute(
            sa.select(form_submissions).where(
                form_submissions.c.id == submission_id, form_submissions.c.tenant_id == tenant_id
            )
        ).first()
        if row is None:
            raise NotFound(f"no submission {submission_id}")
        return row

    def list(
        self,
        who: Principal,
        form_id: str | None,
        limit: int = 50,
        cursor: str | None = None,
        search: Search | None = None,
    ) -> dict[str, Any]:
        """Submission facts (never answers), newest first; ``form_id`` None means every form."""
        c = form_submissions.c
        q = (
            sa.select(
                c.id,
                c.form_id,
                c.version,
                c.received_at,
                c.size,
                c.file_count,
                c.digest,
                c.status,
                c.status_reason,
                c.message_id,
            )
            .where(c.tenant_id == who.tenant_id)
            .order_by(c.id.desc())
            .limit(limit + 1)
        )
        if form_id is not None:
            q = q.where(c.form_id == form_id)
        if search is not None:
            q = q.where(*search.clauses())
        if cursor:
            q = q.where(c.id < cursor)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q).mappings().all()
        page = [{**r, "received_at": r["received_at"].isoformat()} for r in rows[:limit]]
        return {"data": page, "next_cursor": page[-1]["id"] if len(rows) > limit else None}

    def read(self, who: Principal, form_id: str, submission_id: str) -> dict[str, Any]:
        """The decrypted record (files listed, not inlined); every read is audited."""
        with db.reader(self.engine) as conn:
            row = self._submission(conn, who.tenant_id, submission_id)
        if row.form_id != form_id:
            raise NotFound(f"no submission {submission_id}")
        if not row.wrapped_key:
            raise NotFound(
                f"submission {submission_id}: its answers were destroyed under the retention policy"
            )
        stored = json.loads(
            self.keyring.open(who.tenant_id, row.id, row.key_id, row.wrapped_key, row.content)
        )
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.FORM_SUBMISSION_READ,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=row.id,
            )
        return {
            "id": row.id,
            "status": row.status,
            "message_id": row.message_id,
            "digest": row.digest,
            "document": stored["document"],
            "files": [{k: f[k] for k in ("field", "filename", "media_type")} for f in stored["files"]],
        }
