"""Framework refusals on the HTML apps (console, portal, hosted forms) as the app's own page.

FastAPI answers a query value it cannot convert (``?before=abc`` for an ``int``) with a 422
of JSON that quotes the value back, and Starlette a form it cannot parse (too many fields, a
multipart body without a boundary) or a path no route has with JSON too.  On a page a person
opens in a browser that is neither readable nor the house's answer (a 4xx *page*); each HTML
app installs these two handlers with its own page maker.  The client's value is never quoted:
the page says what to do next.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

# (request, status, detail) -> the app's status page.
PageMaker = Callable[[Request, int, str], Response]

NOT_UNDERSTOOD = "This page's address holds a value it does not understand. Go back, or open the link again."


def install(app: FastAPI, page: PageMaker) -> None:
    @app.exception_handler(HTTPException)
    async def _refused(request: Request, exc: HTTPException) -> Response:
        response = page(request, exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value  # 405's Allow, 429's Retry-After
        return response

    @app.exception_handler(RequestValidationError)
    async def _not_understood(request: Request, exc: RequestValidationError) -> Response:
        return page(request, 400, NOT_UNDERSTOOD)
