"""``POST /v1/messages/bulk``: one template, many recipients, each its own message.

Acceptance streams: recipients are taken from any iterable in chunks, each chunk is
rendered, composed and accepted, its errors are written and the job's counts advanced,
and then the chunk is dropped.  Memory therefore depends on the chunk size, not on the
number of recipients (``bench/bulk.py`` measures this with 100,000).  Rendering and
composing run in the calling thread while a thread pool accepts the previous
recipients, so ``Messages.submit``'s group commit writes many messages per transaction.

Each recipient's outcome is independent: a missing variable, a sandbox refusal, a bad
address or a DLP block is recorded against the recipient's index in ``bulk_job_errors``
and nothing is stored for that recipient.  The job row is created first and updated per
chunk, so ``GET /v1/bulk/{id}`` shows progress while a large job runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound, SealmailError
from sealmail.ids import new_id
from sealmail.messages.outgoing import MessageFields
from sealmail.messages.service import Accepted, Idempotency, Messages
from sealmail.store import db
from sealmail.templates import personalize as p
from sealmail.templates.render import Compiled
from sealmail.templates.states import BulkStatus
from sealmail.templates.tables import bulk_job_errors, bulk_jobs
from sealmail.tenancy.service import Principal

CHUNK = 500
ACCEPT_THREADS = 16
MAX_ERROR_CHARS = 500


class BulkRecipient(Protocol):
    """One recipient of a bulk send: the address, its own variables and metadata."""

    @property
    def to(self) -> str: ...
    @property
    def template_data(self) -> Mapping[str, Any]: ...
    @property
    def metadata(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class BulkSpec:
    """What every recipient shares: the compiled template, the message fields, the data."""

    compiled: Compiled
    base: MessageFields
    shared_data: dict[str, Any]
    template_name: str | None = None
    template_version: int | None = None
    # ``<Idempotency-Key>`` of the request and its body hash: recipient *i* is accepted as
    # ``<key>#<i>``, so a retried bulk replays what was stored and stores the rest.
    idempotency: Idempotency | None = None


@dataclass(frozen=True, slots=True)
class BulkTemplate:
    name: str
    version: int | None


@dataclass(frozen=True, slots=True)
class BulkError:
    """Why one recipient (by its index in the request) was not accepted."""

    index: int
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class BulkJob:
    """A bulk job's progress, and one page of its per-recipient errors."""

    id: str
    status: BulkStatus
    total: int
    accepted: int
    failed: int
    template: BulkTemplate | None
    created_at: datetime
    finished_at: datetime | None
    errors: tuple[BulkError, ...]
    next_cursor: str | None


@dataclass(slots=True)
class _Tally:
    accepted: int = 0
    failed: int = 0


class BulkSender:
    def __init__(
        self,
        engine: Engine,
        messages: Messages,
        *,
        message_id_domain: str,
        max_recipients: int,
        chunk: int = CHUNK,
        threads: int = ACCEPT_THREADS,
    ) -> None:
        self.engine = engine
        self.messages = messages
        self.domain = message_id_domain
        self.max_recipients = max_recipients
        self.chunk = chunk
        self.threads = threads

    # -- the job -------------------------------------------------------------------------------
    def start(self, who: Principal, spec: BulkSpec) -> str:
        job_id = new_id("blk")
        with db.write(self.engine) as conn:
            conn.execute(
                sa.insert(bulk_jobs).values(
                    id=job_id,
                    tenant_id=who.tenant_id,
                    status=BulkStatus.PROCESSING,
                    total=0,
                    accepted=0,
                    failed=0,
                    template_name=spec.template_name,
                    template_version=spec.template_version,
                    created_by=who.credential_id,
                    created_at=datetime.now(UTC),
                )
            )
            audit.append(
                conn,
                action=AuditAction.BULK_JOB_STARTED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=job_id,
                details={"template": spec.template_name, "version": spec.template_version},
            )
        return job_id

    def run(self, who: Principal, job_id: str, spec: BulkSpec, recipients: Iterable[BulkRecipient]) -> None:
        """Accept every recipient, chunk by chunk; the job ends ``completed`` or ``failed``.

        ``failed`` means the system could not go on (the database went away, say): what
        was committed before stays committed and counted; the exception propagates.
        """
        tally = _Tally()
        status = BulkStatus.FAILED
        try:
            with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="bulk") as pool:
                for start, chunk in _chunks(recipients, self.chunk):
                    errors = self._chunk(pool, who, spec, job_id, start, chunk, tally)
                    self._record(who.tenant_id, job_id, errors, tally)
            status = BulkStatus.COMPLETED
        finally:
            self._finish(who, job_id, status, tally)

    def send(self, who: Principal, spec: BulkSpec, recipients: Iterable[BulkRecipient]) -> str:
        job_id = self.start(who, spec)
        self.run(who, job_id, spec, recipients)
        return job_id

    # -- one chunk -----------------------------------------------------------------------------
    def _chunk(
        self,
        pool: ThreadPoolExecutor,
        who: Principal,
        spec: BulkSpec,
        job_id: str,
        start: int,
        chunk: list[BulkRecipient],
        tally: _Tally,
    ) -> list[tuple[int, list[dict[str, str]]]]:
        errors: list[tuple[int, list[dict[str, str]]]] = []
        futures: list[tuple[int, Future[tuple[Accepted, bool]]]] = []
        for offset, rcpt in enumerate(chunk):
            index = start + offset
            try:
                variables = {**spec.shared_data, **rcpt.template_data}
                message = p.personalize(
                    spec.base,
                    p.render_or_fail(spec.compiled, variables),
                    to=[rcpt.to],
                    metadata={**rcpt.metadata, "bulk_id": job_id},
                )
                sub = p.submission(message, self.domain, self.max_recipients)
            except SealmailError as exc:
                errors.append((index, _errors_of(exc)))
                continue
            idem = None
            if spec.idempotency is not None:
                idem = Idempotency(f"{spec.idempotency.key}#{index}", spec.idempotency.request_hash)
            futures.append((index, pool.submit(self.messages.submit, who, sub, idem)))
        for index, future in futures:
            try:
                future.result()
            except SealmailError as exc:
                errors.append((index, _errors_of(exc)))
                continue
            tally.accepted += 1
        tally.failed += len(errors)
        errors.sort(key=lambda e: e[0])
        return errors

    def _record(
        self, tenant_id: str, job_id: str, errors: list[tuple[int, list[dict[str, str]]]], tally: _Tally
    ) -> None:
        with db.write(self.engine) as conn:
            rows = [
                {
                    "job_id": job_id,
                    "idx": index,
                    "seq": seq,
                    "tenant_id": tenant_id,
                    "field": e["field"][:200],
                    "message": e["message"][:MAX_ERROR_CHARS],
                }
                for index, errs in errors
                for seq, e in enumerate(errs)
            ]
            if rows:
                conn.execute(sa.insert(bulk_job_errors), rows)
            conn.execute(
                sa.update(bulk_jobs)
                .where(bulk_jobs.c.id == job_id, bulk_jobs.c.tenant_id == tenant_id)
                .values(accepted=tally.accepted, failed=tally.failed, total=tally.accepted + tally.failed)
            )

    def _finish(self, who: Principal, job_id: str, status: BulkStatus, tally: _Tally) -> None:
        with db.write(self.engine) as conn:
            conn.execute(
                sa.update(bulk_jobs)
                .where(bulk_jobs.c.id == job_id, bulk_jobs.c.tenant_id == who.tenant_id)
                .values(status=status, finished_at=datetime.now(UTC))
            )
            audit.append(
                conn,
                action=AuditAction.BULK_JOB_FINISHED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=job_id,
                details={"status": status, "accepted": tally.accepted, "failed": tally.failed},
            )

    # -- reading -------------------------------------------------------------------------------
    def get(self, tenant_id: str, job_id: str, *, limit: int = 100, after: int = -1) -> BulkJob:
        """The job, and its errors in recipient order from index ``after + 1`` (a page)."""
        with db.reader(self.engine) as conn:
            job = conn.execute(
                sa.select(bulk_jobs).where(bulk_jobs.c.id == job_id, bulk_jobs.c.tenant_id == tenant_id)
            ).first()
            if job is None:
                raise NotFound(f"no bulk job {job_id!r}")
            # Pages hold whole recipients: the cursor is the last recipient index shown.
            scope = (
                bulk_job_errors.c.job_id == job_id,
                bulk_job_errors.c.tenant_id == tenant_id,
                bulk_job_errors.c.idx > after,
            )
            indexes = [
                int(i)
                for (i,) in conn.execute(
                    sa.select(bulk_job_errors.c.idx)
                    .where(*scope)
                    .distinct()
                    .order_by(bulk_job_errors.c.idx)
                    .limit(limit + 1)
                )
            ]
            shown = indexes[:limit]
            rows = (
                conn.execute(
                    sa.select(bulk_job_errors)
                    .where(*scope, bulk_job_errors.c.idx <= shown[-1])
                    .order_by(bulk_job_errors.c.idx, bulk_job_errors.c.seq)
                ).all()
                if shown
                else []
            )
        next_cursor = str(shown[-1]) if len(indexes) > limit else None
        return BulkJob(
            id=job.id,
            status=BulkStatus(job.status),
            total=job.total,
            accepted=job.accepted,
            failed=job.failed,
            template=BulkTemplate(job.template_name, job.template_version) if job.template_name else None,
            created_at=job.created_at,
            finished_at=job.finished_at,
            errors=tuple(BulkError(r.idx, r.field, r.message) for r in rows),
            next_cursor=next_cursor,
        )


def _chunks(items: Iterable[BulkRecipient], size: int) -> Iterator[tuple[int, list[BulkRecipient]]]:
    it = iter(items)
    start = 0
    while chunk := list(islice(it, size)):
        yield start, chunk
        start += len(chunk)


def _errors_of(exc: SealmailError) -> list[dict[str, str]]:
    listed = exc.extra.get("errors")
    if isinstance(listed, list) and listed:
        return [{"field": str(e.get("field", "")), "message": str(e.get("message", ""))} for e in listed]
    return [{"field": "", "message": f"{exc.title}: {exc.detail}"}]
