"""Large files on the compose page: streamed upload, then a secure link in the message.

The page's script (``compose.js``) sends each chosen file as the raw body of
``POST /console/compose/files`` — never a multipart form, which would spool the whole file
to a plaintext temporary file first — and the server seals it a chunk at a time as it
arrives (``files.http.pump``, the API's ``POST /v1/files`` path), up to ``max_file_bytes``.
Sending the message then ties the files to it (``files.attaching``): the message carries
a link per file and goes through the portal, where the recipient downloads them.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import hmac
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from sealmail.console.kit import Kit
from sealmail.domain.numerals import within
from sealmail.errors import PayloadTooLarge
from sealmail.files import http
from sealmail.files.service import FileShares
from sealmail.tenancy.credentials import Principal
from sealmail.users.roles import Permission
from sealmail.web import security

# As the API role mounts the console (``runtime.api_app``); its body limit lets this through.
UPLOAD_PATH = "/console/compose/files"


def mount_uploads(app: FastAPI, kit: Kit, shares: FileShares, limit: int) -> None:
    script = (resources.files("sealmail.console") / "templates" / "compose.js").read_text()

    @app.get("/static/compose.js", include_in_schema=False)
    def compose_script() -> Response:
        return security.harden(Response(script, media_type="text/javascript"), "default-src 'none'")

    @app.post(UPLOAD_PATH.removeprefix("/console"))
    async def upload(request: Request) -> Response:
        who = await run_in_threadpool(kit.signed_in, request, Permission.COMPOSE)
        if isinstance(who, Response):
            return who
        if http.media_type(request.headers.get("content-type")) != "application/octet-stream":
            raise HTTPException(400, "Send the file as the raw body (application/octet-stream).")
        # A script's request: the session's CSRF token in a header, and the Origin checked.
        token = request.headers.get("x-csrf-token", "")
        if not security.same_origin(request) or not hmac.compare_digest(kit.csrf(request), token):
            raise HTTPException(403, "This upload did not come from this site.")
        length = request.headers.get("content-length")
        if length is not None and not within(length, limit):
            raise HTTPException(413, f"Large files may be up to {limit // (1024 * 1024)} MB each.")
        raw_name = http.filename_from_disposition(request.headers.get("content-disposition"))
        if not raw_name:
            raise HTTPException(400, "Name the file in Content-Disposition.")
        kind = http.media_type(request.headers.get("x-file-content-type"))
        principal = Principal(who.tenant_id, who.actor, frozenset({"send"}))
        up = await run_in_threadpool(shares.start, principal, http.clean_filename(raw_name), kind)
        try:
            await http.pump(request, up, limit)
        except PayloadTooLarge:
            await run_in_threadpool(up.abort, "too_large")
            raise HTTPException(413, f"Large files may be up to {limit // (1024 * 1024)} MB each.") from None
        except ClientDisconnect:
            await run_in_threadpool(up.abort, "client_disconnected")
            raise
        except BaseException:
            await run_in_threadpool(up.abort, "error")
            raise
        info = await run_in_threadpool(up.finish)
        return JSONResponse({"id": info.id, "filename": info.filename, "size": info.size}, status_code=201)
