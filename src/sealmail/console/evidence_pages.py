"""The compliance officer's console pages (``/console/evidence``), a ``ConsoleSection``.

One page shows the retention periods, legal holds, the unencrypted-by-request register and
the confidential-communication preferences (164.522(b)) with their forms, and links every
report (CSV or PDF, any period) and the evidence pack.
Reading needs ``evidence.view`` (compliance officer, auditor, owner); changing anything
``evidence.manage`` (compliance officer, owner).  Every change goes through the same
service calls as the API and CLI, so it is audited the same way, with the person's id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.errors import InvalidRequest
from sealmail.evidence.catalogue import REPORTS
from sealmail.evidence.pack import Packer, parse_period
from sealmail.evidence.plain import WARNING
from sealmail.evidence.registers import PlainState, PreferenceState
from sealmail.evidence.reports import Period, ReportFilter
from sealmail.evidence.retention import FLOOR_DAYS, RetentionPolicy
from sealmail.evidence.service import Evidence
from sealmail.users.model import Session
from sealmail.users.roles import Permission
from sealmail.web.downloads import disposition

VIEW, MANAGE = Permission.VIEW_EVIDENCE, Permission.MANAGE_EVIDENCE


def _day(value: str, name: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: a date as YYYY-MM-DD") from exc


def _int(form: Any, name: str) -> int:
    try:
        return int(str(form.get(name, "")))
    except ValueError as exc:
        raise InvalidRequest(f"{name}: a whole number of days") from exc


# A register's revoke(tenant_id, id, actor, via, reason): plain.py and preferences.py alike.
Revoke = Callable[[str, str, str, str, str], object]


def _staff_revoke(revoke: Revoke, item_id: str) -> Callable[[Session, Any], None]:
    """The revoke form of either patient register: staff revoke, with the reason they give."""

    def act(who: Session, form: Any) -> None:
        revoke(who.tenant_id, item_id[:40], who.actor, "staff", str(form.get("reason", ""))[:1000])

    return act


def section(evidence: Evidence) -> ConsoleSection:
    def mounted(app: FastAPI, kit: Kit) -> None:
        mount(app, kit, evidence)

    return ConsoleSection(nav=[("/evidence", "Evidence", VIEW)], mount=mounted, templates="sealmail.evidence")


def mount(app: FastAPI, kit: Kit, evidence: Evidence) -> None:
    def page(request: Request, who: Session) -> Response:
        today = datetime.now(UTC).date()
        return kit.page(
            request,
            "evidence_home.html",
            who,
            MANAGE,
            title="Evidence",
            policy=evidence.retention.policy(who.tenant_id),
            floor=FLOOR_DAYS,
            holds=evidence.retention.holds(who.tenant_id),
            requests=evidence.plain.requests(who.tenant_id),
            preferences=evidence.preferences.preferences(who.tenant_id),
            warning=WARNING,
            PlainState=PlainState,
            PreferenceState=PreferenceState,
            reports=list(REPORTS),
            since=(today - timedelta(days=30)).isoformat(),
            until=(today + timedelta(days=1)).isoformat(),
            quarter=f"{today.year}-Q{(today.month - 1) // 3 + 1}",
        )

    @app.get("/evidence")
    def home(request: Request) -> Response:
        who = kit.signed_in(request, VIEW)
        return who if isinstance(who, Response) else page(request, who)

    @app.get("/evidence/reports/{name}")
    def report(request: Request, name: str, since: str = "", until: str = "", format: str = "csv",
               sender: str = "", recipient_domain: str = "", stream: str = "",
               campaign: str = "") -> Response:  # fmt: skip
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        period = Period(_day(since, "since"), _day(until, "until")) if since or until else None
        f = ReportFilter(
            sender[:320] or None, recipient_domain[:255] or None, stream[:20] or None, campaign[:100] or None
        )
        data = evidence.report(name[:40], who.tenant_id, period, who.actor, format, f)
        media = "application/pdf" if format == "pdf" else "text/csv; charset=utf-8"
        return Response(
            data, media_type=media, headers={"Content-Disposition": disposition(f"{name}.{format}")}
        )

    @app.get("/evidence/pack")
    def pack(request: Request, period: str = "") -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        data = Packer(evidence).build(who.tenant_id, parse_period(period[:10]), who.actor)
        headers = {"Content-Disposition": disposition(f"sealmail-evidence-{period[:10]}.zip")}
        return Response(data, media_type="application/zip", headers=headers)

    async def change(request: Request, act: Any) -> Response:
        return await kit.act(request, MANAGE, act, "/evidence")

    @app.post("/evidence/retention")
    async def retention(request: Request) -> Response:
        def act(who: Session, form: Any) -> None:
            wanted = RetentionPolicy(
                _int(form, "content_days"), _int(form, "metadata_days"), _int(form, "audit_days")
            )
            evidence.retention.set_policy(who.tenant_id, wanted, who.actor)

        return await change(request, act)

    @app.post("/evidence/holds")
    async def hold(request: Request) -> Response:
        def act(who: Session, form: Any) -> None:
            scope, target = str(form.get("scope", "")), str(form.get("target", ""))[:320]
            evidence.retention.place_hold(
                who.tenant_id, scope, target, str(form.get("reason", ""))[:500], who.actor
            )

        return await change(request, act)

    @app.post("/evidence/holds/{hold_id}/release")
    async def release(request: Request, hold_id: str) -> Response:
        return await change(
            request, lambda who, _f: evidence.retention.release_hold(who.tenant_id, hold_id[:40], who.actor)
        )

    @app.post("/evidence/plain")
    async def plain(request: Request) -> Response:
        def act(who: Session, form: Any) -> None:
            address, proof = str(form.get("address", ""))[:320], str(form.get("evidence", ""))[:1000]
            evidence.plain.record(who.tenant_id, address, proof, who.actor)

        return await change(request, act)

    @app.post("/evidence/plain/{request_id}/revoke")
    async def revoke(request: Request, request_id: str) -> Response:
        return await change(request, _staff_revoke(evidence.plain.revoke, request_id))

    @app.post("/evidence/preferences")
    async def preference(request: Request) -> Response:
        def act(who: Session, form: Any) -> None:
            address, kind = str(form.get("address", ""))[:320], str(form.get("kind", ""))[:20]
            alternative = str(form.get("alternative", "")).strip()[:320] or None
            proof = str(form.get("evidence", ""))[:1000]
            evidence.preferences.record(who.tenant_id, address, kind, who.actor, "staff", proof, alternative)

        return await change(request, act)

    @app.post("/evidence/preferences/{preference_id}/revoke")
    async def revoke_preference(request: Request, preference_id: str) -> Response:
        return await change(request, _staff_revoke(evidence.preferences.revoke, preference_id))
