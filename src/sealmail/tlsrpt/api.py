"""TLS reports received about the tenant's own domains, over HTTP (``/v1/tlsrpt/reports``).

Reports arrive as RFC 8460 §5.4 uploads (``application/tlsrpt+gzip`` or ``+json``) to an
``https:`` rua the tenant points at this route, or are imported from mail; each is checked
against the RFC's fields and must name only the tenant's verified domains.
"""

# No ``from __future__ import annotations``: FastAPI reads the ``Annotated`` aliases of
# the route functions at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sealmail.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from sealmail.tenancy.service import Principal
from sealmail.tlsrpt.report import MAX_REPORT_BYTES, InvalidReport, parse_received
from sealmail.tlsrpt.service import TlsReports
from sealmail.web.models import Out

UPLOAD_PATH = "/v1/tlsrpt/reports"
_MEDIA = ("application/tlsrpt+gzip", "application/tlsrpt+json", "application/json")


class TlsReportOut(Out):
    id: str
    policy_domain: str = Field(description="The (first) policy domain the report is about.")
    organization: str = Field(description="organization-name of the reporting MTA.")
    report_id: str
    start_at: str
    end_at: str
    successes: int = Field(description="Sum of total-successful-session-count over its policies.")
    failures: int = Field(description="Sum of total-failure-session-count over its policies.")
    report: dict[str, Any] = Field(description="The RFC 8460 JSON as received.")
    received_at: str


class TlsReportListOut(BaseModel):
    data: list[TlsReportOut]


def router(reports: TlsReports, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["tlsrpt"])
    Reader = Annotated[Principal, need("read")]
    Admin = Annotated[Principal, need("admin")]

    @r.get("/tlsrpt/reports", response_model=TlsReportListOut)
    def list_reports(who: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> TlsReportListOut:
        """Newest first (by the start of the period they cover)."""
        return TlsReportListOut(
            data=[TlsReportOut.of(r) for r in reports.received(who.tenant_id, limit=limit)]
        )

    @r.get("/tlsrpt/reports/{report_id}", response_model=TlsReportOut)
    def get_report(report_id: str, who: Reader) -> TlsReportOut:
        return TlsReportOut.of(reports.received_one(who.tenant_id, report_id))

    @r.post("/tlsrpt/reports", status_code=201, response_model=TlsReportOut)
    async def post_report(request: Request, who: Admin) -> TlsReportOut:
        """Store an RFC 8460 report (gzip'd or plain JSON) about the tenant's own domains."""
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in _MEDIA:
            raise UnsupportedMediaType(f"send one of {', '.join(_MEDIA)}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REPORT_BYTES:
                raise PayloadTooLarge("a TLS report is at most 1 MB")
        try:
            report = parse_received(body)
        except InvalidReport as exc:
            raise ValidationFailed([{"field": "body", "message": str(exc)}]) from exc
        stored = await run_in_threadpool(reports.receive, who.tenant_id, report, actor=who.credential_id)
        return TlsReportOut.of(stored)

    return r
