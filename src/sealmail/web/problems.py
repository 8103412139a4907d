"""RFC 9457 rendering: one handler for the whole error catalogue, by MRO."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sealmail.errors import PROBLEM_BASE, SealmailError

log = structlog.get_logger("sealmail.api")
PROBLEM_JSON = "application/problem+json"


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=int(body["status"]), media_type=PROBLEM_JSON, headers=headers
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "header", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(SealmailError)
    async def _sealmail(request: Request, exc: SealmailError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else getattr(exc, "headers", None)
        return problem_response(exc.problem(instance=request.url.path), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        malformed = False
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                malformed = True
            errors.append({"field": _field(tuple(err.get("loc", ()))), "message": str(err.get("msg"))})
        if malformed:
            return problem_response(
                {
                    "type": PROBLEM_BASE + "malformed-json",
                    "title": "The body is not valid JSON",
                    "status": 400,
                    "detail": "the request body is not valid JSON; check quoting and commas",
                    "instance": request.url.path,
                }
            )
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return problem_response(
            {
                "type": PROBLEM_BASE + "validation-failed",
                "title": "The request has invalid fields",
                "status": 422,
                "detail": f"{first['field']}: {first['message']}",
                "instance": request.url.path,
                "errors": errors,
            }
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            {
                "type": PROBLEM_BASE + slug,
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
                "instance": request.url.path,
            }
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the class only: exception text may quote request content.
        log.error("api.unhandled", error=type(exc).__name__, path=request.url.path)
        return problem_response(
            {
                "type": PROBLEM_BASE + "internal",
                "title": "Internal error",
                "status": 500,
                "detail": "an unexpected error occurred; nothing was stored — retry with the "
                "same Idempotency-Key",
                "instance": request.url.path,
            }
        )
