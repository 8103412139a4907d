"""The console's segment, campaign, frequency-cap and journey screens (``ConsoleSection``).

Each screen is a thin adapter over the same services the API uses, so the rules, the limits
and the audit entries are theirs: a segment rule from the structured builder or the JSON box
is compiled by ``marketing.rules`` (depth, size, declared names, the PHI classes touched), a
campaign body is the API's ``CampaignIn``, a journey definition goes through
``journey_defs.validate``.  What a person did wrong comes back in the page (422), a class
the role may not see is a 403 page, another tenant's id is a 404 (``NotFound``, rendered by
the console's error handler).

Roles: every page is ``marketing.view``; what sends or defines mail (saving a segment,
creating or starting a campaign, saving or (de)activating a journey) needs
``messages.compose``, as ``send`` keys do in the API; caps need ``settings.manage``, as
the API's ``admin`` scope.  Counting and previewing a rule is ``marketing.view``, like the
overview's Count button, and audited with the classes it touched.  Names people typed are
shown inside ``<bdi>`` so a right-to-left override in one cannot reorder the page around it.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import json
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import Response

from sealmail.console import segment_builder as sb
from sealmail.console.kit import Kit
from sealmail.console.marketing_pages import classes_for
from sealmail.console.web import ConsoleSection
from sealmail.domain.marketing import PhiClass, Purpose
from sealmail.domain.numerals import ascii_digits, whole_number
from sealmail.errors import Conflict, PermissionDenied, ValidationFailed
from sealmail.marketing.analytics import METRICS
from sealmail.marketing.campaigns import MAX_VARIANTS
from sealmail.marketing.journey_defs import MAX_STEPS
from sealmail.marketing.schemas import CampaignIn, without_nul
from sealmail.marketing.segments import check_classes
from sealmail.marketing.service import Marketing
from sealmail.marketing.states import CampaignStatus
from sealmail.tenancy.credentials import Principal
from sealmail.users.model import Session
from sealmail.users.roles import Permission

VIEW, COMPOSE, SETTINGS = Permission.VIEW_MARKETING, Permission.COMPOSE, Permission.MANAGE_SETTINGS
PAGE = 50  # rows per page of a list
AUDIENCE_PAGE = 100
SAMPLE = 20
# The form's variant rows (as many as a campaign may have), each's name when none is given.
VARIANT_NAMES = [chr(ord("a") + i) for i in range(MAX_VARIANTS)]
FORM_FIELDS = 9 + 3 * MAX_VARIANTS  # csrf … quiet_end, then name, template, weight per row
MAX_DEFINITION = 64 * 1024
NAME_MAX = 100
# The chart's bars per variant: what a marketer reads first (opens and clicks by people).
CHART = (
    ("sent", "sent"), ("delivered", "delivered"), ("opened", "human opens"), ("clicked", "human clicks"),
    ("bounced", "bounces"), ("complained", "complaints"), ("unsubscribed", "unsubscribes"),
    ("converted", "conversions"),
)  # fmt: skip
STARTER_JOURNEY = {
    "trigger": {"type": "api_event", "event": "appointment_booked"},
    "steps": [
        {"send": {"template": "welcome", "purpose": "treatment", "from": "care@clinic.example"}},
        {"wait": {"hours": 24}},
        {"exit": {}},
    ],
}


def _problems(exc: ValidationFailed) -> list[str]:
    return [f"{e['field']}: {e['message']}" for e in exc.extra.get("errors", [])][:20] or [exc.detail]


def _principal(who: Session) -> Principal:
    return Principal(who.tenant_id, who.actor, frozenset({"send"}))


def _need(who: Session, permission: Permission) -> None:
    if not who.may(permission):
        raise HTTPException(403, "Your role does not include this action.")


def section(mk: Marketing) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        _segments(app, kit, mk)
        _campaigns(app, kit, mk)
        _caps(app, kit, mk)
        _journeys(app, kit, mk)

    return ConsoleSection(nav=[], mount=mount, templates="sealmail.marketing")


# -- segments -----------------------------------------------------------------------------------
def _segments(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    def builder(request: Request, who: Session, status: int = 200, **ctx: Any) -> Response:
        allowed = classes_for(who)
        defs = {n: d for n, d in mk.attributes.defs(who.tenant_id).items() if d.phi_class in allowed}
        cursor = request.query_params.get("cursor", "")[:40]
        got = mk.segments.page(who.tenant_id, limit=PAGE, cursor=cursor)
        shown = [{**s, "usable": set(s["phi_classes"]) <= {str(c) for c in allowed}} for s in got["data"]]
        ctx.setdefault("name", "")
        ctx.setdefault("rule_text", "")
        return kit.page(
            request, "mkt_segments.html", who, COMPOSE, status=status, title="Segments",
            segments=shown, next_cursor=got["next_cursor"], paged=bool(cursor),
            attributes=defs, op_groups=sb.op_groups(defs), hints=sb.OP_HINTS, kinds=sb.KINDS,
            purposes=sb.PURPOSES, states=sb.CONSENT_STATES,
            lists=[{**li, "label": sb.inert(li["name"])} for li in mk.lists.list(who.tenant_id)],
            **ctx,
        )  # fmt: skip

    @app.get("/marketing/segments")
    def segments_page(request: Request) -> Response:
        who = kit.signed_in(request, VIEW)
        return who if isinstance(who, Response) else builder(request, who)

    @app.get("/marketing/segments/{segment_id}/edit")
    def segment_edit(request: Request, segment_id: str) -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        s = mk.segments.get(who.tenant_id, segment_id[:40])  # NotFound: another tenant's is a 404
        # The rule holds values (a diagnosis): shown only to a role that may see its classes.
        check_classes(frozenset(PhiClass(c) for c in s["phi_classes"]), classes_for(who))
        return builder(request, who, name=s["name"], rule_text=sb.pretty(s["rule"]), editing=s)

    @app.post("/marketing/segments/build")
    async def segment_build(request: Request) -> Response:
        acted = await kit.acting(request, VIEW)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        fields = {k: str(v)[:2000] for k, v in form.items() if k != "rule"}
        rule_text = str(form.get("rule", ""))[: sb.MAX_RULE_TEXT + 1]
        do = fields.get("do", "preview")
        if do == "save":
            _need(who, COMPOSE)
        return await run_in_threadpool(_build, request, who, fields, rule_text, do)

    def _build(request: Request, who: Session, fields: dict[str, str], rule_text: str, do: str) -> Response:
        name = fields.get("name", "")
        ctx: dict[str, Any] = {"name": name, "rule_text": rule_text, "last": fields}
        try:
            rule = sb.parse_rule(rule_text)
            if do == "add":
                rule = sb.combine(rule, sb.leaf(fields), fields.get("combine", "all"), "negate" in fields)
                ctx["rule_text"] = sb.pretty(rule)
            if rule is None:
                raise sb.BuildError("rule", "add a condition, or write the rule as JSON")
            if do == "save":
                saved = mk.segments.save(
                    who.tenant_id, sb.segment_name(name), rule, actor=who.actor, allowed=classes_for(who)
                )
                ctx["saved"] = saved
            ctx["preview"] = mk.segments.evaluate(
                who.tenant_id, rule=rule, actor=who.actor, allowed=classes_for(who), sample=SAMPLE
            )
        except sb.BuildError as exc:
            return builder(request, who, 422, problems=[f"{exc.field}: {exc.message}"], **ctx)
        except ValidationFailed as exc:
            return builder(request, who, 422, problems=_problems(exc), **ctx)
        except PermissionDenied as exc:
            return builder(request, who, 403, refused=exc.detail, **ctx)
        return builder(request, who, **ctx)


# -- campaigns ----------------------------------------------------------------------------------
def _template_choices(mk: Marketing, tenant_id: str) -> list[tuple[str, str]]:
    """(value, label) for each template version, newest first within a name: ``name@version``."""
    out: list[tuple[str, str]] = []
    for t in mk.campaigns.templates.list(tenant_id)[:100]:
        for v in sorted(mk.campaigns.templates.get(tenant_id, t.name).versions, reverse=True)[:10]:
            out.append((f"{t.name}@{v}", f"{sb.inert(t.name)} version {v}"))
    return out


def _campaign_body(form: dict[str, str]) -> dict[str, Any]:
    variants = []
    for i in range(MAX_VARIANTS):
        pick = form.get(f"v{i}_template", "")
        if not pick:
            continue
        template, _, version = pick.rpartition("@")
        variants.append(
            {
                "name": form.get(f"v{i}_name", "").strip() or VARIANT_NAMES[i],
                "template": template,
                "version": whole_number(version),
                "weight": whole_number(w) if ascii_digits(w := form.get(f"v{i}_weight", "1").strip()) else w,
            }
        )
    send_at = form.get("send_at", "").strip()
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "purpose": form.get("purpose", ""),
        "remunerated": "remunerated" in form,
        "segment": form.get("segment", ""),
        "from": form.get("from", "").strip(),
        "variants": variants,
        "send_at": (send_at if "+" in send_at or send_at.endswith("Z") else send_at + "Z")
        if send_at
        else None,
    }
    for hour in ("quiet_start", "quiet_end"):
        if form.get(hour, "").strip():
            body[hour] = form[hour].strip()
    return body


def _chart(stats: dict[str, dict[str, int]]) -> dict[str, int]:
    return {
        f"{variant} {label}": row.get(metric, 0) for variant, row in stats.items() for metric, label in CHART
    }


def _campaigns(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    def new_form(request: Request, who: Session, status: int = 200, **ctx: Any) -> Response:
        allowed = {str(c) for c in classes_for(who)}
        segments = [
            {**s, "label": f"{sb.inert(s['name'])} v{s['version']}"}
            for s in mk.segments.list(who.tenant_id)
            if set(s["phi_classes"]) <= allowed
        ]
        ctx.setdefault("last", {})
        return kit.page(
            request, "mkt_campaign_new.html", who, COMPOSE, status=status, title="New campaign",
            segments=segments, templates=_template_choices(mk, who.tenant_id), purposes=sb.PURPOSES,
            variants=list(enumerate(VARIANT_NAMES)), **ctx,
        )  # fmt: skip

    def campaign_page(
        request: Request, who: Session, campaign_id: str, status: int = 200, **ctx: Any
    ) -> Response:
        c = mk.campaigns.get(who.tenant_id, campaign_id)  # NotFound: another tenant's is a 404
        stats = mk.campaigns.stats(who.tenant_id, campaign_id)["variants"]
        checks = (
            mk.campaigns.checks(who.tenant_id, campaign_id) if c["status"] == CampaignStatus.DRAFT else None
        )
        chart = _chart(stats) if any(any(r.values()) for r in stats.values()) else {}
        return kit.page(
            request, "mkt_campaign.html", who, COMPOSE, status=status,
            title=f"Campaign {sb.inert(c['name'])}", c=c, stats=stats, chart=chart, metrics=METRICS,
            checks=checks, draft=CampaignStatus.DRAFT, **ctx,
        )  # fmt: skip

    @app.get("/marketing/campaigns")
    def campaigns_list(request: Request, cursor: str = "") -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        page = mk.campaigns.page(who.tenant_id, PAGE, cursor[:40])
        return kit.page(request, "mkt_campaigns.html", who, COMPOSE, title="Campaigns", page=page)

    @app.get("/marketing/campaigns/new")
    def campaign_new(request: Request) -> Response:
        who = kit.signed_in(request, COMPOSE)
        return who if isinstance(who, Response) else new_form(request, who)

    @app.post("/marketing/campaigns/new")
    async def campaign_create(request: Request) -> Response:
        acted = await kit.acting(request, COMPOSE, max_fields=FORM_FIELDS)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        fields = {k: str(v)[:500] for k, v in form.items()}

        def create() -> Response:
            try:
                body = CampaignIn.model_validate(_campaign_body(fields)).as_body()
                made = mk.campaigns.create(who.tenant_id, body, actor=who.actor, allowed=classes_for(who))
            except ValidationError as exc:
                problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()][:20]
                return new_form(request, who, 422, problems=problems, last=fields)
            except ValidationFailed as exc:
                return new_form(request, who, 422, problems=_problems(exc), last=fields)
            except PermissionDenied as exc:
                return new_form(request, who, 403, problems=[exc.detail], last=fields)
            return kit.redirect(request, f"/marketing/campaigns/{made['id']}")

        return await run_in_threadpool(create)

    @app.get("/marketing/campaigns/{campaign_id}")
    def campaign_view(request: Request, campaign_id: str) -> Response:
        who = kit.signed_in(request, VIEW)
        return who if isinstance(who, Response) else campaign_page(request, who, campaign_id[:40])

    @app.post("/marketing/campaigns/{campaign_id}/start")
    async def campaign_start(request: Request, campaign_id: str) -> Response:
        acted = await kit.acting(request, COMPOSE)
        if isinstance(acted, Response):
            return acted
        who, _ = acted
        cid = campaign_id[:40]

        def start() -> Response:
            try:
                mk.campaigns.send(_principal(who), cid, allowed=classes_for(who))
            except ValidationFailed as exc:
                return campaign_page(request, who, cid, 422, problems=_problems(exc))
            except (Conflict, PermissionDenied) as exc:
                return campaign_page(request, who, cid, exc.status, problems=[exc.detail])
            return kit.redirect(request, f"/marketing/campaigns/{cid}")

        return await run_in_threadpool(start)

    @app.get("/marketing/campaigns/{campaign_id}/audience")
    def campaign_audience(request: Request, campaign_id: str, cursor: str = "") -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        c = mk.campaigns.get(who.tenant_id, campaign_id[:40])
        page = mk.campaigns.audience(who.tenant_id, c["id"], AUDIENCE_PAGE, cursor[:40])
        return kit.page(
            request,
            "mkt_audience.html",
            who,
            COMPOSE,
            title=f"Audience of {sb.inert(c['name'])}",
            c=c,
            page=page,
        )

    @app.get("/marketing/campaigns/{campaign_id}/stats.csv")
    def campaign_csv(request: Request, campaign_id: str) -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        body = "".join(mk.campaigns.stats_csv(who.tenant_id, campaign_id[:40]))
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="campaign-stats.csv"'},
        )


# -- caps ---------------------------------------------------------------------------------------
def _caps(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    def caps_page(request: Request, who: Session, status: int = 200, **ctx: Any) -> Response:
        return kit.page(
            request, "mkt_caps.html", who, SETTINGS, status=status, title="Frequency caps",
            caps=mk.campaigns.caps(who.tenant_id), **ctx,
        )  # fmt: skip

    @app.get("/marketing/caps")
    def caps_view(request: Request) -> Response:
        who = kit.signed_in(request, VIEW)
        return who if isinstance(who, Response) else caps_page(request, who)

    @app.post("/marketing/caps/{purpose}")
    async def caps_set(request: Request, purpose: str) -> Response:
        acted = await kit.acting(request, SETTINGS)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        problems = []
        if purpose not in set(Purpose):
            problems.append(f"purpose: use one of {', '.join(sb.PURPOSES)}")
        numbers: dict[str, int] = {}
        for field, high in (("max_sends", 1000), ("window_hours", 24 * 90)):
            raw = str(form.get(field, "")).strip()
            number = whole_number(raw)
            if number is None or not 1 <= number <= high:
                problems.append(f"{field}: a whole number, 1–{high}")
            else:
                numbers[field] = number
        if problems:
            return await run_in_threadpool(lambda: caps_page(request, who, 422, problems=problems))
        await run_in_threadpool(
            mk.campaigns.set_cap,
            who.tenant_id,
            purpose,
            numbers["max_sends"],
            numbers["window_hours"],
            who.actor,
        )
        return kit.redirect(request, "/marketing/caps")


# -- journeys -----------------------------------------------------------------------------------
def _journeys(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    def journeys_page(request: Request, who: Session, status: int = 200, **ctx: Any) -> Response:
        cursor = request.query_params.get("cursor", "")[:40]
        got = mk.journeys.page(who.tenant_id, limit=PAGE, cursor=cursor)
        ctx.setdefault("name", "")
        ctx.setdefault("definition", sb.pretty(STARTER_JOURNEY))
        return kit.page(
            request, "mkt_journeys.html", who, COMPOSE, status=status, title="Journeys",
            journeys=got["data"], next_cursor=got["next_cursor"], paged=bool(cursor), max_steps=MAX_STEPS,
            **ctx,
        )  # fmt: skip

    @app.get("/marketing/journeys")
    def journeys_view(request: Request, start: str = "") -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        if start:  # a new version of this one: its name and definition in the form
            j = mk.journeys.get(who.tenant_id, start[:40])
            return journeys_page(
                request,
                who,
                name=j["name"],
                definition=sb.pretty(j["definition"]),
            )
        return journeys_page(request, who)

    @app.post("/marketing/journeys")
    async def journey_save(request: Request) -> Response:
        acted = await kit.acting(request, COMPOSE)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        name = str(form.get("name", "")).strip()[: NAME_MAX + 1]
        text = str(form.get("definition", ""))[: MAX_DEFINITION + 1]

        def save() -> Response:
            ctx = {"name": name, "definition": text}
            try:
                if not 1 <= len(name) <= NAME_MAX:
                    raise ValidationFailed([{"field": "name", "message": f"1–{NAME_MAX} characters"}])
                if len(text) > MAX_DEFINITION:
                    raise ValidationFailed(
                        [{"field": "definition", "message": f"at most {MAX_DEFINITION // 1024} KiB"}]
                    )
                try:
                    definition = json.loads(text)
                except (json.JSONDecodeError, RecursionError):
                    raise ValidationFailed([{"field": "definition", "message": "is not JSON"}]) from None
                if not isinstance(definition, dict):
                    raise ValidationFailed([{"field": "definition", "message": "must be a JSON object"}])
                try:
                    without_nul(definition)  # "\u0000" in the JSON: PostgreSQL refuses NUL
                except ValueError as exc:
                    raise ValidationFailed([{"field": "definition", "message": str(exc)}]) from None
                saved = mk.journeys.save(
                    who.tenant_id, name, definition, actor=who.actor, allowed=classes_for(who)
                )
            except ValidationFailed as exc:
                return journeys_page(request, who, 422, problems=_problems(exc), **ctx)
            except PermissionDenied as exc:
                return journeys_page(request, who, 403, problems=[exc.detail], **ctx)
            return kit.redirect(request, f"/marketing/journeys/{saved['id']}/steps")

        return await run_in_threadpool(save)

    def steps_page(
        request: Request, who: Session, jid: str, status: int = 200, problems: Any = ()
    ) -> Response:
        j = mk.journeys.get(who.tenant_id, jid)
        steps = [(i, *next(iter(s.items()))) for i, s in enumerate(j["definition"].get("steps", []))]
        return kit.page(
            request, "mkt_journey_steps.html", who, COMPOSE, title=f"Journey {sb.inert(j['name'])}", j=j,
            steps=[(i, kind, sb.pretty(body, None)) for i, kind, body in steps],
            trigger=sb.pretty(j["definition"].get("trigger"), None), problems=list(problems),
            status=status,
        )  # fmt: skip

    @app.get("/marketing/journeys/{journey_id}/steps")
    def journey_steps(request: Request, journey_id: str) -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        return steps_page(request, who, journey_id[:40])

    def switch(change: str) -> Any:
        """A POST that activates, deactivates, pauses or resumes one journey version, then back
        to it; a refused change (a resume whose checks fail, a second pause) shows why."""

        async def route(request: Request, journey_id: str) -> Response:
            acted = await kit.acting(request, COMPOSE)
            if isinstance(acted, Response):
                return acted
            who, _ = acted
            jid, j = journey_id[:40], mk.journeys
            done = {
                "activate": lambda: j.set_active(who.tenant_id, jid, True, actor=who.actor),
                "deactivate": lambda: j.set_active(who.tenant_id, jid, False, actor=who.actor),
                "pause": lambda: j.pause(who.tenant_id, jid, who.actor),
                "resume": lambda: j.resume(who.tenant_id, jid, who.actor),
            }[change]
            try:
                await run_in_threadpool(done)
            except ValidationFailed as exc:
                status, problems = 422, _problems(exc)
            except Conflict as exc:
                status, problems = 409, [exc.detail]
            else:
                return kit.redirect(request, f"/marketing/journeys/{jid}/steps")
            return await run_in_threadpool(lambda: steps_page(request, who, jid, status, problems))

        return route

    for change in ("activate", "deactivate", "pause", "resume"):
        app.post(f"/marketing/journeys/{{journey_id}}/{change}")(switch(change))
