"""The suppression list over HTTP (``/v1/suppressions``): list, read, add, remove, export.

Thin: the rules live in ``services/suppressions.py``.  Reading and exporting need the
``read`` scope; adding and removing need ``admin`` (an entry decides who gets mail).  The
API adds ``manual`` and ``unsubscribe`` entries only: bounces and complaints are facts
Sealmail records itself.  Removal takes the stream and address as query parameters, so an
address (``@``, ``+``) or the all-streams ``*`` never has to fit in a path segment.
"""

# No ``from __future__ import annotations``: FastAPI reads the ``Annotated`` aliases of
# the route functions at definition time.
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from sealmail.domain.page import Page
from sealmail.suppressions.service import Entry, Filters, Suppressions
from sealmail.tenancy.service import Principal
from sealmail.web.models import Instant

StreamName = Literal["*", "transactional", "phi", "broadcast"]
ReasonName = Literal["hard_bounce", "soft_bounce", "complaint", "unsubscribe", "manual"]
# Room for any RFC 5321 path (256 octets) and then some; longer cannot be a stored address.
MAX_ADDRESS = 320


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=MAX_ADDRESS, description="The bare address, e.g. jane@example.net.")
    stream: StreamName = Field("*", description='A stream, or "*" for every stream.')
    reason: Literal["manual", "unsubscribe"] = Field(
        "manual", description="Bounces and complaints are recorded by Sealmail itself."
    )
    expires_at: Instant | None = Field(
        None, description="When the entry stops suppressing (with a timezone offset); none = until removed."
    )


class SuppressionOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    address: str = Field(description="Lower-cased: addresses are compared case-insensitively.")
    stream: str = Field(description='transactional | phi | broadcast | "*" (every stream)')
    reason: str = Field(description="hard_bounce | soft_bounce | complaint | unsubscribe | manual")
    source: str = Field(description="Where it came from: api, cli, smtp (a delivery outcome), …")
    message_id: str | None = Field(description="The message whose outcome caused it, if any.")
    created_by: str
    created_at: str
    updated_at: str
    expires_at: str | None
    active: bool = Field(description="False once expires_at has passed.")

    @classmethod
    def from_entry(cls, e: Entry) -> "SuppressionOut":
        # The same fields, timestamps as ISO 8601 strings.
        return cls.model_validate(
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(e).items()}
        )


class SuppressionPageOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: list[SuppressionOut]
    next_cursor: str | None

    @classmethod
    def from_page(cls, page: Page[Entry]) -> "SuppressionPageOut":
        return cls(data=[SuppressionOut.from_entry(e) for e in page.items], next_cursor=page.next_cursor)


CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "RFC 4180 CSV with a header line: "
        "address, stream, reason, source, created_at, expires_at, message_id.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def router(store: Suppressions, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["suppressions"])
    Reader = Annotated[Principal, need("read")]
    Admin = Annotated[Principal, need("admin")]
    Cursor = Annotated[str | None, Query(max_length=40, description="next_cursor of the previous page.")]
    Address = Annotated[str | None, Query(max_length=MAX_ADDRESS)]

    @r.get("/suppressions", response_model=SuppressionPageOut)
    def list_suppressions(
        who: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Cursor = None,
        stream: StreamName | None = None,
        reason: ReasonName | None = None,
        address: Address = None,
    ) -> SuppressionPageOut:
        """Newest first.  ``stream`` matches entries of exactly that stream ("*" included)."""
        page = store.list(who.tenant_id, limit=limit, cursor=cursor, filters=Filters(stream, reason, address))
        return SuppressionPageOut.from_page(page)

    @r.get("/suppressions/export.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
    def export_suppressions(
        who: Reader,
        stream: StreamName | None = None,
        reason: ReasonName | None = None,
    ) -> StreamingResponse:
        """Every entry as CSV, streamed; cells that a spreadsheet would run as a formula
        (``=``, ``+``, ``-``, ``@``) are prefixed with ``'`` (OWASP "CSV injection")."""
        lines = store.export_csv(who.tenant_id, Filters(stream, reason))
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
        )

    @r.get("/suppressions/{suppression_id}", response_model=SuppressionOut)
    def get_suppression(suppression_id: str, who: Reader) -> SuppressionOut:
        return SuppressionOut.from_entry(store.get(who.tenant_id, suppression_id))

    @r.post(
        "/suppressions",
        status_code=201,
        response_model=SuppressionOut,
        responses={200: {"model": SuppressionOut, "description": "The entry existed and already said this."}},
    )
    def add_suppression(body: SuppressionIn, who: Admin, response: Response) -> SuppressionOut:
        """Add an entry, or update the one for this stream and address (audited).

        201 when written; 200 when an active entry already said as much.
        """
        row, written = store.add(
            who.tenant_id,
            address=body.address,
            stream=body.stream,
            reason=body.reason,
            expires_at=body.expires_at,
            actor=who.credential_id,
            source="api",
        )
        if not written:
            response.status_code = 200
        return SuppressionOut.from_entry(row)

    @r.delete("/suppressions", status_code=204)
    def remove_suppression(
        who: Admin,
        address: Annotated[str, Query(max_length=MAX_ADDRESS)],
        stream: StreamName = "*",
    ) -> None:
        """Remove the entry for exactly this stream ("*" is its own entry); 404 if none (audited)."""
        store.remove(who.tenant_id, stream=stream, address=address, actor=who.credential_id)

    return r
