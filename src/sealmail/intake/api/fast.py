"""A fast way in for the hottest POST routes (``/v1/messages``): a well-formed request skips
FastAPI's per-request solving; anything else is answered by the FastAPI route itself.

FastAPI solves every request from the route's signature: the body read and decoded with
``json.loads``, then validated as Python objects, the security dependency, the header
parameter, three exit stacks, query and cookie parsing for parameters the route does not
have.  On the 2-vCPU VM of issue 18 that was about a fifth of the API process's CPU per
accepted message.  Here a request whose body is ``application/json`` and validates as the
route's model in one pass (pydantic's JSON validation) is authenticated with the same
``ScopedBearer`` and handed to the same handler as the route's, so it gets the same answer,
rows, audit and rate-limit count.  Every other request — unreadable, not JSON, invalid — is
given unchanged to the FastAPI route (before anything was counted against the key), which
answers it with exactly the errors it always gave; the OpenAPI document is still built from
that route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from sealmail.intake.api.guard import ScopedBearer
from sealmail.tenancy.service import Principal

M = TypeVar("M", bound=BaseModel)

# The route's work once the request is known good: (request, its body, the model, who).
Handler = Callable[[Request, bytes, M, Principal], Awaitable[Response]]


class FastPost(Route, Generic[M]):
    """``POST path`` ahead of the FastAPI route ``route`` for the same path (see the module)."""

    def __init__(self, route: APIRoute, model: type[M], need: ScopedBearer, handle: Handler[M]) -> None:
        super().__init__(route.path, self._serve, methods=["POST"], include_in_schema=False)
        self.route = route
        self.model = model
        self.need = need
        self.accept = handle

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Only a full match: any other method finds the FastAPI routes (and their 405) as before.
        if scope["type"] != "http" or scope["method"] != "POST":
            return Match.NONE, {}
        return super().matches(scope)

    async def _serve(self, request: Request) -> Response:
        try:
            body = await request.body()
        except Exception as exc:  # noqa: BLE001 — the FastAPI route meets the same error reading it
            return _Delegated(self.route, _failing(exc))
        value = self._parsed(request, body)
        if value is None:
            return _Delegated(self.route, _replaying(body, request.receive))
        return await self.accept(request, body, value, await self.need(request))

    def _parsed(self, request: Request, body: bytes) -> M | None:
        """The body as the model when it is plainly JSON of it, else None (the route decides)."""
        ctype = request.headers.get("content-type", "")
        if not body or ctype.partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            return self.model.model_validate_json(body)
        except ValidationError:
            return None


class _Delegated(Response):
    """The FastAPI route's own answer to this request (``receive`` gives it the body again)."""

    def __init__(self, route: APIRoute, receive: Receive) -> None:
        self.route = route
        self.receive = receive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # As the router sets it for the route it picked (its endpoint, path parameters, route).
        _, selected = self.route.matches(scope)
        scope.update(selected)
        await self.route.handle(scope, self.receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given once more first."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _failing(exc: Exception) -> Receive:
    async def fail() -> Message:
        raise exc

    return fail
