"""The audit log's downloads: CSV and the signed JSON export, with the page's filters.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import json
from datetime import UTC, date, datetime, time, timedelta

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from sealmail.console.audit_export import AuditExport, Filters
from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.users.roles import Permission
from sealmail.web.downloads import disposition

Day = date | None


def _day(value: date | None) -> datetime | None:
    return datetime.combine(value, time(0), tzinfo=UTC) if value else None


def audit_section(exporter: AuditExport) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        async def export(
            request: Request, fmt: str, action: str, actor: str, since: date | None, until: date | None
        ) -> Response:
            who = await run_in_threadpool(kit.signed_in, request, Permission.VIEW_AUDIT)
            if isinstance(who, Response):
                return who
            # ``until`` is a day, inclusive: entries before the next midnight.
            f = Filters(
                action[:60], actor[:80], _day(since), _day(until + timedelta(days=1) if until else None)
            )
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            if fmt == "csv":
                body = await run_in_threadpool(exporter.csv, who.tenant_id, who.actor, f)
                media, name = "text/csv; charset=utf-8", f"audit-{stamp}.csv"
            else:
                doc = await run_in_threadpool(exporter.signed_json, who.tenant_id, who.actor, f)
                body = json.dumps(doc, indent=2, sort_keys=True) + "\n"
                media, name = "application/json", f"audit-{stamp}.json"
            return Response(body, media_type=media, headers={"Content-Disposition": disposition(name)})

        @app.get("/audit/export.csv")
        async def export_csv(
            request: Request, action: str = "", actor: str = "", since: Day = None, until: Day = None
        ) -> Response:
            return await export(request, "csv", action, actor, since, until)

        @app.get("/audit/export.json")
        async def export_json(
            request: Request, action: str = "", actor: str = "", since: Day = None, until: Day = None
        ) -> Response:
            return await export(request, "json", action, actor, since, until)

    return ConsoleSection(nav=[], mount=mount)
