"""Large files carried by a composed message instead of attachments (the console's compose).

The sender uploads each file first (``FileShares.start``, streamed and sealed a chunk at a
time); the message then carries a link to each file's portal page and the ``file-share``
tag, so SecureLine sends it through the portal and a recipient downloads the file after
signing in there (``access.py``: access follows the hold of the message that carried it).
Only the uploader's own ready, unsent files can be carried, and each file is carried once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.tags import SystemTag
from sealmail.errors import Conflict, NotFound
from sealmail.files.service import FileInfo, FileShares, Status
from sealmail.files.tables import file_shares
from sealmail.messages.submission import Submission
from sealmail.store import db
from sealmail.tenancy.service import Principal

MAX_FILES = 5  # large files one message carries


def link(shares: FileShares, file_id: str) -> str:
    """The file's page in the portal (the recipient signs in there first)."""
    return f"{shares.portal_url}/p/files/{file_id}"


def unsent(shares: FileShares, who: Principal, file_ids: Sequence[str]) -> list[FileInfo]:
    """The caller's own ready files not yet sent, in order; NotFound for any other (another
    user's or tenant's file is indistinguishable from a missing one), Conflict once sent."""
    found = []
    with db.reader(shares.engine) as conn:
        for file_id in dict.fromkeys(file_ids):
            row = conn.execute(
                sa.select(file_shares.c.id, file_shares.c.status, file_shares.c.message_id).where(
                    file_shares.c.id == file_id,
                    file_shares.c.tenant_id == who.tenant_id,
                    file_shares.c.created_by == who.credential_id,
                )
            ).first()
            if row is None or row.status != Status.READY:
                raise NotFound(f"file {file_id} not found (upload it again)")
            if row.message_id is not None:
                raise Conflict(f"file {file_id} was already sent; upload it again")
            found.append(file_id)
    return [shares.describe(who.tenant_id, f) for f in found]


def carrying(sub: Submission, file_ids: Sequence[str]) -> Submission:
    """The submission tagged to go through the portal, naming its files in metadata."""
    tags = (*sub.tags, SystemTag.FILE_SHARE) if SystemTag.FILE_SHARE not in sub.tags else sub.tags
    return replace(sub, tags=tags, metadata={**sub.metadata, "file_ids": ",".join(file_ids)})


def bind(shares: FileShares, who: Principal, file_ids: Sequence[str], message_id: str) -> datetime:
    """Tie the files to the message that carries them, in one transaction (audited as
    ``file:sent`` per file); Conflict, and nothing tied, if any was sent or deleted meanwhile."""
    expires = shares.now() + timedelta(days=shares.expiry_days)
    with shares.engine.begin() as conn:
        for file_id in file_ids:
            won = conn.execute(
                sa.update(file_shares)
                .where(
                    file_shares.c.id == file_id,
                    file_shares.c.tenant_id == who.tenant_id,
                    file_shares.c.created_by == who.credential_id,
                    file_shares.c.status == Status.READY,
                    file_shares.c.message_id.is_(None),
                )
                .values(message_id=message_id, expires_at=expires)
            ).rowcount
            if not won:
                raise Conflict(f"file {file_id} was sent or deleted concurrently")
            audit.append(
                conn,
                action=AuditAction.FILE_SENT,
                actor=who.credential_id,
                tenant_id=who.tenant_id,
                target=file_id,
                details={"message_id": message_id, "carried": True},
            )
    return expires
