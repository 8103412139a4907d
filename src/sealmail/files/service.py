"""FileShares: upload a large file in chunks, send it as a portal message, read, shred.

One write path per state change: each method writes the row and its audit entry in one
transaction.  Chunks go to the blob store *before* the row says ``ready``, so a ready
row always has all of its chunks; a crash mid-upload leaves an ``uploading`` row whose
blobs ``sweep`` deletes later.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.crypto import vault
from sealmail.domain import message as mime
from sealmail.domain.addresses import (
    Address,
    InvalidAddress,
    header_text_problem,
    parse_address,
    parse_address_list,
)
from sealmail.domain.tags import SystemTag
from sealmail.domain.tls_policy import Stream
from sealmail.errors import Conflict, NotFound, ValidationFailed
from sealmail.evidence.retention import is_file_held
from sealmail.files import chunks
from sealmail.files.blobstore import BlobStore
from sealmail.files.reading import OpenedFile, chunk_key, file_prefix
from sealmail.files.tables import file_shares
from sealmail.ids import new_id
from sealmail.messages.service import Accepted, EnvelopeRecipient, Messages, Submission
from sealmail.store import db
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Principal

Clock = Callable[[], datetime]


class Status(enum.StrEnum):
    UPLOADING = "uploading"
    READY = "ready"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class ShareRequest:
    """What the sender says when sending a file: who, a subject and an optional note."""

    sender: str
    to: tuple[str, ...]
    subject: str
    note: str = ""
    expires_days: int | None = None


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file's metadata; ``filename`` decrypted for the sender, None once shredded."""

    id: str
    status: str
    filename: str | None
    content_type: str | None
    size: int | None
    sha256: str | None
    chunk_size: int | None
    chunks: int | None
    message_id: str | None
    created_at: datetime | None
    expires_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True, slots=True)
class Shredded:
    """A crypto-shredded file: its key is gone; ``blobs_deleted`` chunks were removed."""

    id: str
    status: str
    blobs_deleted: int


@dataclass(frozen=True, slots=True)
class FileSent:
    """A file sent: the portal message that carries its link, and when the link expires."""

    message: Accepted
    file_id: str
    expires_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


class Upload:
    """One upload in progress: buffer to a chunk, seal, store; hash the plaintext.

    ``feed`` holds back the newest full chunk until more bytes arrive, because only the
    end of the stream tells whether it is the final one (sealed with the final flag).
    The buffer never exceeds one chunk plus one network read.
    """

    def __init__(self, shares: FileShares, tenant_id: str, file_id: str, key: bytes, chunk_size: int) -> None:
        self.shares = shares
        self.tenant_id = tenant_id
        self.file_id = file_id
        self._key = key
        self.chunk_size = chunk_size
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self.size = 0
        self._index = 0
        self.closed = False

    def would_write(self, more: int) -> bool:
        """True when feeding ``more`` bytes seals a chunk (so the caller moves off the loop)."""
        return len(self._buffer) + more > self.chunk_size

    def feed(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("upload already finished")
        self._hash.update(data)
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) > self.chunk_size:
            self._write(bytes(self._buffer[: self.chunk_size]), final=False)
            del self._buffer[: self.chunk_size]

    def _write(self, plain: bytes, *, final: bool) -> None:
        blob = chunks.seal_chunk(self._key, self.tenant_id, self.file_id, self._index, final, plain)
        self.shares.blobs.put(chunk_key(self.tenant_id, self.file_id, self._index), blob)
        self._index += 1

    def finish(self) -> FileInfo:
        """Seal the last chunk, mark the file ready; returns its metadata."""
        self._write(bytes(self._buffer), final=True)
        self._buffer = bytearray()
        self.closed = True
        return self.shares._finalize(self, self._hash.hexdigest(), self._index)

    def abort(self, reason: str) -> None:
        """Forget a failed upload: delete its chunks and its keys."""
        if self.closed:
            return
        self.closed = True
        self._buffer = bytearray()
        self.shares._abort(self.tenant_id, self.file_id, reason)


class FileShares:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        blobs: BlobStore,
        messages: Messages,
        *,
        portal_url: str,
        message_id_domain: str,
        chunk_size: int = chunks.DEFAULT_CHUNK_SIZE,
        expiry_days: int = 30,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.blobs = blobs
        self.messages = messages
        self.portal_url = portal_url.rstrip("/")
        self.message_id_domain = message_id_domain
        self.chunk_size = chunk_size
        self.expiry_days = expiry_days
        self.now = clock or _now

    # -- upload --------------------------------------------------------------------------------
    def start(self, who: Principal, filename: str, content_type: str) -> Upload:
        """Create the file's row and key; the caller feeds the bytes to the returned Upload."""
        file_id = new_id("fil")
        key = vault.new_key()
        # The keyring seals the raw file key like any content: tenant key → data key → file
        # key, so tenant-key rotation and master-key rewrap work the way they do for messages.
        tenant_key_id, wrapped, sealed_key = self.keyring.seal(who.tenant_id, file_id, key)
        name_enc = vault.seal(key, filename.encode(), chunks.name_aad(who.tenant_id, file_id))
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(file_shares).values(
                    id=file_id,
                    tenant_id=who.tenant_id,
                    filename_enc=name_enc,
                    content_type=content_type,
                    size=0,
                    chunk_size=self.chunk_size,
                    chunks=0,
                    tenant_key_id=tenant_key_id,
                    wrapped_data_key=wrapped,
                    file_key_enc=sealed_key,
                    status=Status.UPLOADING,
                    created_by=who.credential_id,
                    created_at=self.now(),
                )
            )
        return Upload(self, who.tenant_id, file_id, key, self.chunk_size)

    def _finalize(self, up: Upload, sha256: str, count: int) -> FileInfo:
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(file_shares)
                .where(
                    file_shares.c.id == up.file_id,
                    file_shares.c.tenant_id == up.tenant_id,
                    file_shares.c.status == Status.UPLOADING,
                )
                .values(
                    size=up.size, sha256=sha256, chunks=count, status=Status.READY, finalized_at=self.now()
                )
            ).rowcount
            if not done:
                raise Conflict(f"file {up.file_id} was deleted while uploading")
            audit.append(
                conn,
                action=AuditAction.FILE_UPLOADED,
                actor=self._actor_of(conn, up.tenant_id, up.file_id),
                tenant_id=up.tenant_id,
                target=up.file_id,
                details={"size": up.size, "chunks": count},
            )
        return self.describe(up.tenant_id, up.file_id)

    def _abort(self, tenant_id: str, file_id: str, reason: str) -> None:
        with self.engine.begin() as conn:
            self._shred_row(conn, tenant_id, file_id)
            audit.append(
                conn,
                action=AuditAction.FILE_UPLOAD_ABORTED,
                actor=self._actor_of(conn, tenant_id, file_id),
                tenant_id=tenant_id,
                target=file_id,
                details={"reason": reason},
            )
        self.blobs.delete_prefix(file_prefix(tenant_id, file_id))

    @staticmethod
    def _actor_of(conn: Connection, tenant_id: str, file_id: str) -> str:
        actor = conn.execute(
            sa.select(file_shares.c.created_by).where(
                file_shares.c.id == file_id, file_shares.c.tenant_id == tenant_id
            )
        ).scalar_one()
        return str(actor)

    # -- metadata ------------------------------------------------------------------------------
    def _row(self, conn: Connection, tenant_id: str, file_id: str) -> Any:
        row = conn.execute(
            sa.select(file_shares).where(file_shares.c.id == file_id, file_shares.c.tenant_id == tenant_id)
        ).first()
        if row is None:
            # Another tenant's file is indistinguishable from a missing one.
            raise NotFound(f"file {file_id} not found; list your files' ids from the upload responses")
        return row

    def _filename(self, row: Any, key: bytes | None) -> str | None:
        if row.filename_enc is None or key is None:
            return None
        return vault.open_sealed(key, row.filename_enc, chunks.name_aad(row.tenant_id, row.id)).decode()

    def _key(self, row: Any) -> bytes | None:
        if row.wrapped_data_key is None or row.file_key_enc is None:
            return None  # crypto-shredded
        return self.keyring.open(
            row.tenant_id, row.id, row.tenant_key_id, row.wrapped_data_key, row.file_key_enc
        )

    def describe(self, tenant_id: str, file_id: str) -> FileInfo:
        with db.reader(self.engine) as conn:
            row = self._row(conn, tenant_id, file_id)
        stored = {f.name: getattr(row, f.name) for f in fields(FileInfo) if f.name != "filename"}
        return FileInfo(**stored, filename=self._filename(row, self._key(row)))

    def open(self, tenant_id: str, file_id: str) -> OpenedFile:
        """A ready file for the sender's own download; NotFound when gone or not ready."""
        with db.reader(self.engine) as conn:
            row = self._row(conn, tenant_id, file_id)
        return self.opened(row)

    def opened(self, row: Any) -> OpenedFile:
        """A row as an OpenedFile (key unwrapped); NotFound unless ready and not shredded."""
        key = self._key(row) if row.status == Status.READY else None
        if key is None:
            raise NotFound(f"file {row.id} is not available (still uploading, or deleted)")
        return OpenedFile(
            id=row.id,
            tenant_id=row.tenant_id,
            message_id=row.message_id,
            filename=self._filename(row, key) or "file",
            content_type=row.content_type,
            sha256=row.sha256,
            layout=chunks.Layout(row.size, row.chunk_size),
            key=key,
            blobs=self.blobs,
        )

    # -- sending -------------------------------------------------------------------------------
    def send(self, who: Principal, file_id: str, req: ShareRequest) -> FileSent:
        """Send the file as a portal message; returns the accepted message.

        The message holds only the sender's subject and note and a link to the file's
        portal page: the filename (often PHI) is shown only inside the signed-in portal.
        It carries the ``file-share`` tag, which SecureLine routes to the portal.
        """
        with db.reader(self.engine) as conn:
            row = self._row(conn, who.tenant_id, file_id)
        if row.status != Status.READY:
            raise Conflict(f"file {file_id} is {row.status}; only a ready file can be sent")
        if row.message_id is not None:
            raise Conflict(f"file {file_id} was already sent as message {row.message_id}; upload it again")
        sub = self._share_submission(file_id, req)
        result, _ = self.messages.submit(who, sub)
        message_id = result.id
        expires = self.now() + timedelta(days=req.expires_days or self.expiry_days)
        with self.engine.begin() as conn:
            won = conn.execute(
                sa.update(file_shares)
                .where(
                    file_shares.c.id == file_id,
                    file_shares.c.tenant_id == who.tenant_id,
                    file_shares.c.status == Status.READY,
                    file_shares.c.message_id.is_(None),
                )
                .values(message_id=message_id, expires_at=expires)
            ).rowcount
            if won:
                audit.append(
                    conn,
                    action=AuditAction.FILE_SENT,
                    actor=who.credential_id,
                    tenant_id=who.tenant_id,
                    target=file_id,
                    details={"message_id": message_id, "recipients": len(sub.recipients)},
                )
        if not won:
            # A concurrent send (or delete) won the row: withdraw the message we just made.
            self.messages.cancel(who, message_id)
            raise Conflict(f"file {file_id} was sent or deleted concurrently")
        return FileSent(result, file_id, expires)

    def _share_submission(self, file_id: str, req: ShareRequest) -> Submission:
        """The portal message that carries the file's link (never its name)."""
        sender, to = _share_addresses(req)
        link = f"{self.portal_url}/p/files/{file_id}"
        who_name = sender.display_name or sender.addr_spec
        text = (
            (req.note.strip() + "\n\n" if req.note.strip() else "")
            + f"{who_name} shared a file with you securely.\n"
            + f"Download it from the secure portal (you are already signed in when you read this):\n{link}\n"
        )
        built = mime.build(
            mime.Draft(sender=sender, to=tuple(to), subject=req.subject, text=text), self.message_id_domain
        )
        return Submission(
            stream=Stream.PHI,
            source="api",
            mail_from=sender.smtp_addr_spec,
            header_from=sender.smtp_addr_spec,
            recipients=tuple(EnvelopeRecipient(a.smtp_addr_spec, a.ascii_domain, "to") for a in to),
            raw=built.raw,
            message_id_header=built.message_id,
            tags=(SystemTag.FILE_SHARE,),
            metadata={"file_id": file_id},
        )

    # -- crypto-shredding ------------------------------------------------------------------------
    def _shred_row(self, conn: Connection, tenant_id: str, file_id: str) -> None:
        conn.execute(
            sa.update(file_shares)
            .where(file_shares.c.id == file_id, file_shares.c.tenant_id == tenant_id)
            .values(
                status=Status.DELETED,
                wrapped_data_key=None,
                file_key_enc=None,
                filename_enc=None,
                deleted_at=self.now(),
            )
        )

    def delete(self, who: Principal, file_id: str) -> Shredded:
        """Crypto-shred: destroy the wrapped key and the sealed name, then the blobs.

        The key goes first and in its own committed transaction: once it is gone the
        chunks are noise, so a failure deleting blobs (or a backup copy) leaks nothing.
        """
        with self.engine.begin() as conn:
            row = self._row(conn, who.tenant_id, file_id)
            if is_file_held(conn, who.tenant_id, row.message_id):
                # 164.316(b)(2) and litigation holds: the record outlives the sender's wish.
                raise Conflict(
                    f"file {file_id} is under a legal hold; it can be deleted once the hold is released"
                )
            self._shred_row(conn, who.tenant_id, file_id)
            audit.append(
                conn,
                action=AuditAction.FILE_DELETED,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=file_id,
                details={"was": row.status},
            )
        removed = self.blobs.delete_prefix(file_prefix(who.tenant_id, file_id))
        return Shredded(file_id, Status.DELETED, removed)

    def sweep(self, *, stale_uploads: timedelta = timedelta(hours=24)) -> int:
        """Shred expired shares and uploads abandoned mid-way, except under a legal hold;
        returns how many were shredded.

        Meant for the worker's scheduled jobs (portal expiry runs there too).
        """
        now = self.now()
        with db.reader(self.engine) as conn:
            doomed = conn.execute(
                sa.select(file_shares.c.id, file_shares.c.tenant_id, file_shares.c.message_id).where(
                    sa.or_(
                        sa.and_(file_shares.c.status == Status.READY, file_shares.c.expires_at <= now),
                        sa.and_(
                            file_shares.c.status == Status.UPLOADING,
                            file_shares.c.created_at <= now - stale_uploads,
                        ),
                    )
                )
            ).all()
        shredded = 0
        for file_id, tenant_id, message_id in doomed:
            with self.engine.begin() as conn:
                # A legal hold (tenant, message or recipient) outranks expiry, as it does
                # message retention (``evidence/retention.py``): the file waits for its release.
                if is_file_held(conn, tenant_id, message_id):
                    continue
                self._shred_row(conn, tenant_id, file_id)
                audit.append(
                    conn,
                    action=AuditAction.FILE_DELETED,
                    actor="system:files-sweep",
                    tenant_id=tenant_id,
                    target=file_id,
                    details={"why": "expired"},
                )
            self.blobs.delete_prefix(file_prefix(tenant_id, file_id))
            shredded += 1
        return shredded


def _share_addresses(req: ShareRequest) -> tuple[Address, list[Address]]:
    """The share's sender and recipients, or ``ValidationFailed`` (a 422) naming the field.

    The subject becomes the notice's ``Subject`` header: the same text rule as any header.
    """
    errors: list[dict[str, str]] = []
    problem = header_text_problem(req.subject)
    if problem is not None:
        errors.append({"field": "subject", "message": problem})
    sender: Address | None = None
    to: list[Address] = []
    try:
        sender = parse_address(req.sender, "from")
    except InvalidAddress as exc:
        errors.append({"field": exc.field, "message": exc.reason})
    try:
        to = parse_address_list(req.to, "to")
    except InvalidAddress as exc:
        errors.append({"field": exc.field, "message": exc.reason})
    if errors or sender is None:
        raise ValidationFailed(errors)
    return sender, to
