"""The marketing pages of the console (``ConsoleSection``): contacts, segments, campaigns
(with pause, resume and cancel), and each journey's per-node figures (chart, table, CSV).

What a user sees of contacts follows their role: demographics for every role with the
marketing pages, clinical and sensitive attributes only with ``phi.clinical`` /
``phi.sensitive``.  Counting a segment is a POST (CSRF-checked) because it is audited, and
it is refused when the segment touches a class the role may not see.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.domain.display_text import safe_display
from sealmail.domain.marketing import PhiClass
from sealmail.errors import Conflict, NotFound, PermissionDenied
from sealmail.marketing.attributes import BASIC_CLASSES
from sealmail.marketing.campaign_runs import Transition
from sealmail.marketing.service import Marketing
from sealmail.marketing.states import CANCELLABLE, PAUSABLE, RESUMABLE, CampaignStatus
from sealmail.users.model import Session
from sealmail.users.roles import Permission


def classes_for(who: Session) -> frozenset[PhiClass]:
    extra = {PhiClass.CLINICAL} if who.may(Permission.SEE_CLINICAL) else set()
    if who.may(Permission.SEE_SENSITIVE):
        extra.add(PhiClass.SENSITIVE)
    return BASIC_CLASSES | extra


def _control(kit: Kit, permission: Permission, act: Callable[[str, str, str], Transition]) -> Any:
    """A POST that pauses, resumes or cancels a campaign, then back to the overview."""

    async def change(request: Request, campaign_id: str) -> Response:
        acted = await kit.acting(request, permission)
        if isinstance(acted, Response):
            return acted
        who, _ = acted
        try:
            await run_in_threadpool(act, who.tenant_id, campaign_id[:40], who.actor)
        except (Conflict, NotFound) as exc:
            status = 409 if isinstance(exc, Conflict) else 404
            return kit.render(
                request, "status.html", status=status, title="Not done", detail=exc.detail, who=who
            )
        return kit.redirect(request, "/marketing")

    return change


# The campaign buttons: (change, label, the states it works from).
OVERVIEW = 50  # segments, lists and journeys on the overview; their own pages page on
ACTIONS = (("pause", "Pause", PAUSABLE), ("resume", "Resume", RESUMABLE), ("cancel", "Cancel", CANCELLABLE))


def section(mk: Marketing) -> ConsoleSection:
    def checks(who: Session, campaign: dict[str, Any]) -> list[dict[str, str]]:
        # What a draft would fail if started now; a started campaign passed them.
        return (
            mk.campaigns.checks(who.tenant_id, campaign["id"])
            if campaign["status"] == CampaignStatus.DRAFT
            else []
        )

    def mount(app: FastAPI, kit: Kit) -> None:
        def overview(request: Request, who: Session, counted: dict[str, object] | None = None) -> Response:
            allowed = classes_for(who)
            seg, lists, journeys = (
                part.page(who.tenant_id, limit=OVERVIEW) for part in (mk.segments, mk.lists, mk.journeys)
            )
            segments = [
                {**s, "usable": set(s["phi_classes"]) <= {str(c) for c in allowed}} for s in seg["data"]
            ]
            return kit.render(
                request, "marketing_overview.html", title="Marketing", who=who, segments=segments,
                more_segments=seg["next_cursor"], lists=lists["data"], more_lists=lists["next_cursor"],
                journeys=journeys["data"], more_journeys=journeys["next_cursor"],
                campaigns=[{**c, "checks": checks(who, c)} for c in mk.campaigns.recent(who.tenant_id)],
                counted=counted, csrf=kit.csrf(request), draft=CampaignStatus.DRAFT, actions=ACTIONS,
            )  # fmt: skip

        @app.get("/marketing")
        def marketing_overview(request: Request) -> Response:
            who = kit.signed_in(request, Permission.VIEW_MARKETING)
            return who if isinstance(who, Response) else overview(request, who)

        @app.get("/marketing/contacts")
        def marketing_contacts(request: Request, cursor: str = "") -> Response:
            who = kit.signed_in(request, Permission.VIEW_MARKETING)
            if isinstance(who, Response):
                return who
            page = mk.contacts.page(who.tenant_id, classes_for(who), limit=100, cursor=cursor[:40] or None)
            # Values a person or a file brought: no controls or bidi overrides on the page.
            page["data"] = [
                {**c, "email": safe_display(c["email"], 320),
                 "attributes": {k: safe_display(str(v), 500) for k, v in c["attributes"].items()}}
                for c in page["data"]
            ]  # fmt: skip
            return kit.render(
                request, "marketing_contacts.html", title="Contacts", who=who, page=page,
                hidden=sorted(str(c) for c in set(PhiClass) - classes_for(who)),
                may_add=who.may(Permission.COMPOSE),
            )  # fmt: skip

        @app.post("/marketing/segments/{segment_id}/count")
        async def marketing_count(request: Request, segment_id: str) -> Response:
            acted = await kit.acting(request, Permission.VIEW_MARKETING)
            if isinstance(acted, Response):
                return acted
            who, _ = acted
            try:
                result = await run_in_threadpool(
                    mk.segments.evaluate,
                    who.tenant_id,
                    ref=segment_id[:40],
                    actor=who.actor,
                    allowed=classes_for(who),
                    sample=0,
                )
            except PermissionDenied as exc:
                return kit.render(
                    request, "status.html", status=403, title="Not allowed", detail=exc.detail, who=who
                )
            return await run_in_threadpool(
                overview, request, who, {"segment": segment_id, "count": result["count"]}
            )

        @app.get("/marketing/journeys/{journey_id}")
        def marketing_journey(request: Request, journey_id: str) -> Response:
            who = kit.signed_in(request, Permission.VIEW_MARKETING)
            if isinstance(who, Response):
                return who
            try:
                stats = mk.analytics.journey(who.tenant_id, journey_id[:40])
            except NotFound as exc:
                return kit.render(
                    request, "status.html", status=404, title="Not found", detail=exc.detail, who=who
                )
            at_node = {f"{n.step} {n.kind}": n.at_node for n in stats.nodes if n.at_node}
            engaged = {
                f"{n.step} {label}": getattr(n, metric)
                for n in stats.nodes
                if n.kind == "send"
                for label, metric in (
                    ("sent", "sent"),
                    ("opened", "opened"),
                    ("clicked", "clicked"),
                    ("converted", "converted"),
                )
            }
            return kit.render(
                request, "marketing_journey.html", title=f"Journey {stats.name}", who=who, stats=stats,
                at_node=at_node, engaged=engaged if any(engaged.values()) else {},
            )  # fmt: skip

        @app.get("/marketing/journeys/{journey_id}/nodes.csv")
        def marketing_journey_csv(request: Request, journey_id: str) -> Response:
            who = kit.signed_in(request, Permission.VIEW_MARKETING)
            if isinstance(who, Response):
                return who
            try:
                body = "".join(mk.analytics.journey_csv(who.tenant_id, journey_id[:40]))
            except NotFound as exc:
                return kit.render(
                    request, "status.html", status=404, title="Not found", detail=exc.detail, who=who
                )
            return Response(
                body,
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": 'attachment; filename="journey-nodes.csv"'},
            )

        # Stopping mail is always allowed to whoever sees the marketing pages (a compliance
        # officer included); resuming sends mail, so it needs the right to compose.
        controls = {
            "pause": (Permission.VIEW_MARKETING, mk.runs.pause),
            "cancel": (Permission.VIEW_MARKETING, mk.runs.cancel),
            "resume": (Permission.COMPOSE, mk.runs.resume),
        }

        for change, (permission, act) in controls.items():
            app.post(f"/marketing/campaigns/{{campaign_id}}/{change}")(_control(kit, permission, act))

    return ConsoleSection(
        nav=[("/marketing", "Marketing", Permission.VIEW_MARKETING)],
        mount=mount,
        templates="sealmail.marketing",
    )
