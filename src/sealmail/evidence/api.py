"""Evidence over HTTP: a recipient's signed proof of delivery, the delivery report.

Reading either needs the ``read`` scope; both are audited by the service.  Another
tenant's message is a 404 like any missing one.
"""

# No ``from __future__ import annotations``: FastAPI reads the ``Annotated`` aliases of
# the route functions at definition time.
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from sealmail.errors import InvalidRequest
from sealmail.evidence.reports import Period
from sealmail.evidence.schemas import ProofOut
from sealmail.evidence.service import Evidence
from sealmail.tenancy.service import Principal

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "RFC 4180 CSV: status, method, secured_by, tls_version, verified_by, recipients.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def router(evidence: Evidence, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["evidence"])
    Reader = Annotated[Principal, need("read")]
    Id = Annotated[str, Path(max_length=64)]

    @r.get("/messages/{message_id}/recipients/{recipient_id}/proof", response_model=ProofOut)
    def proof(message_id: Id, recipient_id: Id, who: Reader) -> dict[str, Any]:
        """The signed proof of delivery of one recipient (409 until it is delivered).

        Body, a manifest of the SHA-256 of each body field, and an Ed25519 signature by the
        tenant's evidence key over the manifest: check it offline with ``sealmail verify FILE``.
        """
        return evidence.proofs.issue(who.tenant_id, message_id, recipient_id, who.credential_id)

    @r.get("/reports/delivery.csv", response_class=Response, responses=CSV_RESPONSE)
    def delivery_report(
        who: Reader,
        since: Annotated[datetime, Query(description="Start (inclusive), ISO 8601 with offset.")],
        until: Annotated[datetime, Query(description="End (exclusive), ISO 8601 with offset.")],
    ) -> Response:
        """Recipients of messages accepted in the period, by outcome and how they were secured."""
        if since.tzinfo is None or until.tzinfo is None:
            raise InvalidRequest("since and until need a timezone offset (e.g. 2026-10-01T00:00:00Z)")
        if until <= since:
            raise InvalidRequest("until must be after since")
        body = evidence.delivery_report(who.tenant_id, Period(since, until), who.credential_id)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="delivery-report.csv"'},
        )

    return r
