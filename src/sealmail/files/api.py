"""Large-file secure send over the API: streamed upload, send as a portal message, shred.

    POST   /v1/files              raw body (application/octet-stream), streamed to chunks
    POST   /v1/files/{id}/send    JSON: from, to, subject, note → a portal message (202)
    GET    /v1/files/{id}         metadata (filename decrypted for the sender)
    GET    /v1/files/{id}/content the sender's own copy, with Range support
    DELETE /v1/files/{id}         crypto-shred: wrapped key destroyed, then the blobs (409 under a legal hold)

The upload is never held whole in memory: the body is read as it arrives, one network
read at a time, and sealed a chunk at a time.  It needs ``BodyLimit`` (``app.py``) to let
``POST /v1/files`` through without the JSON and ``max_request_bytes`` checks; this route
enforces ``max_file_bytes`` itself, on the declared length and on every byte counted.
Tenant-scoped like every route: another tenant's file is a 404.

No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from sealmail.domain.numerals import within
from sealmail.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from sealmail.files import http
from sealmail.files.schemas import FileDeletedOut, FileOut, FileSentOut
from sealmail.files.service import FileShares, ShareRequest
from sealmail.tenancy.service import Principal
from sealmail.web.models import binary

UPLOAD_PATH = "/v1/files"


class FileSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", max_length=998, description="Sender, on one of the tenant's domains.")
    to: list[str] = Field(min_length=1, max_length=100, description="Recipients; each gets a portal hold.")
    subject: str = Field(
        max_length=998, description="Stored encrypted; shown only in the portal, never in the notice."
    )
    note: str = Field("", max_length=20000, description="Text shown above the download link.")
    expires_days: int | None = Field(
        None, ge=1, le=3650, description="How long the file stays downloadable; default the portal's."
    )


def router(shares: FileShares, need: Any, max_file_bytes: int) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["files"])
    limit = max_file_bytes
    Sender = Annotated[Principal, need("send")]
    Reader = Annotated[Principal, need("read")]

    @r.post("/files", status_code=201, response_model=FileOut, summary="Upload a file (streamed)")
    async def upload(
        request: Request,
        who: Sender,
        content_type: Annotated[str | None, Header()] = None,
        content_length: Annotated[str | None, Header()] = None,
        content_disposition: Annotated[str | None, Header()] = None,
        x_file_content_type: Annotated[str | None, Header()] = None,
    ) -> FileOut:
        """Upload a file as the raw request body (``Content-Type: application/octet-stream``).

        Name it with ``Content-Disposition: attachment; filename*=UTF-8''<percent-encoded>``
        (RFC 6266/8187) and give its own type in ``X-File-Content-Type``.  Chunked transfer
        encoding is fine; the limit is ``max_file_bytes`` (2 GiB by default).
        """
        if http.media_type(content_type) != "application/octet-stream":
            raise UnsupportedMediaType(
                "send the file as the raw body with Content-Type: application/octet-stream"
            )
        if content_length is not None and (not within(content_length, limit)):
            raise PayloadTooLarge(f"the file is over the {limit}-byte limit (SEALMAIL_MAX_FILE_BYTES)")
        raw_name = http.filename_from_disposition(content_disposition)
        if not raw_name:
            raise InvalidRequest(
                "name the file: Content-Disposition: attachment; filename*=UTF-8''<percent-encoded name>"
            )
        up = await run_in_threadpool(
            shares.start, who, http.clean_filename(raw_name), http.media_type(x_file_content_type)
        )
        try:
            await http.pump(request, up, limit)
        except PayloadTooLarge:
            await run_in_threadpool(up.abort, "too_large")
            raise
        except ClientDisconnect:
            await run_in_threadpool(up.abort, "client_disconnected")
            raise
        except BaseException:
            await run_in_threadpool(up.abort, "error")
            raise
        return FileOut.of(await run_in_threadpool(up.finish))

    @r.post(
        "/files/{file_id}/send",
        status_code=202,
        response_model=FileSentOut,
        summary="Send a file as a secure portal message",
    )
    async def send(file_id: str, body: FileSendIn, who: Sender) -> FileSentOut:
        """Send a ready file to recipients as a secure portal message."""
        req = ShareRequest(body.from_, tuple(body.to), body.subject, body.note, body.expires_days)
        return FileSentOut.from_sent(await run_in_threadpool(shares.send, who, file_id, req))

    @r.get("/files/{file_id}", response_model=FileOut, summary="Get a file's metadata")
    def describe(file_id: str, who: Reader) -> FileOut:
        return FileOut.of(shares.describe(who.tenant_id, file_id))

    @r.get(
        "/files/{file_id}/content",
        response_class=Response,
        responses={
            200: binary("The whole file."),
            206: binary("The requested range (`Range: bytes=a-b`)."),
            416: {"description": "The range is outside the file (no body)."},
        },
        summary="Download the sender's copy of a file",
    )
    async def content(
        file_id: str,
        who: Reader,
        range: Annotated[str | None, Header()] = None,
        if_range: Annotated[str | None, Header()] = None,
    ) -> Response:
        """The sender's own copy; ``Range: bytes=a-b`` answers 206 (resume), bad ranges 416."""
        opened = await run_in_threadpool(shares.open, who.tenant_id, file_id)
        response, _ = await http.ranged_download(opened, range, if_range)
        return response

    @r.delete("/files/{file_id}", response_model=FileDeletedOut, summary="Crypto-shred a file")
    async def delete(file_id: str, who: Sender) -> FileDeletedOut:
        """Crypto-shred the file: its key is destroyed first, then its chunks."""
        return FileDeletedOut.of(await run_in_threadpool(shares.delete, who, file_id))

    return r
