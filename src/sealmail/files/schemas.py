"""Response bodies of the large-file routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from sealmail.files.service import FileSent
from sealmail.messages.schemas import AcceptedOut
from sealmail.web.models import Out


class FileOut(Out):
    id: str
    status: str
    filename: str | None = Field(description="Decrypted for the sender; null once shredded.")
    content_type: str | None
    size: int | None
    sha256: str | None
    chunk_size: int | None
    chunks: int | None
    message_id: str | None
    created_at: datetime | None
    expires_at: datetime | None
    deleted_at: datetime | None


class FileSentOut(AcceptedOut):
    model_config = ConfigDict(extra="allow")

    file_id: str
    expires_at: datetime | None

    @classmethod
    def from_sent(cls, sent: FileSent) -> FileSentOut:
        accepted = AcceptedOut.from_result(sent.message)
        return cls(**accepted.model_dump(), file_id=sent.file_id, expires_at=sent.expires_at)


class FileDeletedOut(Out):
    id: str
    status: str
    blobs_deleted: int
