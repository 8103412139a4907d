"""The monthly activity review in the console (``/console/evidence/review``), a ``ConsoleSection``.

The compliance officer (and the owner) read the month's queue — failed sign-ins, exports,
policy weakenings, break-glass uses, large content reads and sign-ins outside the tenant's
working hours — sign it off with a note, and set those working hours and the large-read
threshold.  An auditor reads the queue and the sign-off but changes nothing.  The sign-off and
the settings go through the same service calls (and the same check, ``review_settings``) as the
API and the CLI, so each is audited with the person's id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.errors import InvalidRequest
from sealmail.evidence.activity_review import MONTH_RE
from sealmail.evidence.service import Evidence
from sealmail.evidence.working_hours import DAY_NAMES, MAX_LARGE_READS, ReviewSettings, review_settings
from sealmail.users.model import Session
from sealmail.users.roles import Permission

VIEW, MANAGE = Permission.VIEW_EVIDENCE, Permission.MANAGE_EVIDENCE
LABELS = {
    "failed_sign_in": "Failed sign-ins and lock-outs",
    "off_hours_sign_in": "Sign-ins outside working hours",
    "content_read": "Content reads",
    "large_content_read": "Large content reads (one person, one day)",
    "export": "Exports",
    "break_glass": "Break-glass grants and uses",
    "dlp_override": "Quarantine releases",
    "weakened_setting": "Protective settings weakened",
}


def section(evidence: Evidence) -> ConsoleSection:
    def mounted(app: FastAPI, kit: Kit) -> None:
        mount(app, kit, evidence)

    return ConsoleSection(
        nav=[("/evidence/review", "Activity review", VIEW)], mount=mounted, templates="sealmail.evidence"
    )


def _month(value: str) -> str:
    month = value.strip()[:7] or datetime.now(UTC).strftime("%Y-%m")
    if not MONTH_RE.match(month):
        raise InvalidRequest("month must be YYYY-MM")
    return month


def _settings(form: Any, current: ReviewSettings) -> ReviewSettings:
    # The one check the API and the CLI apply too; a form without the threshold keeps it.
    return review_settings(
        form.get("time_zone", ""),
        form.get("start", ""),
        form.get("end", ""),
        form.getlist("weekdays"),
        form.get("large_reads", current.large_reads),
    )


def mount(app: FastAPI, kit: Kit, evidence: Evidence) -> None:
    review = evidence.activity_review

    @app.get("/evidence/review")
    def page(request: Request, month: str = "") -> Response:
        who = kit.signed_in(request, VIEW)
        if isinstance(who, Response):
            return who
        wanted = _month(month)
        queue = review.queue(who.tenant_id, wanted)
        settings = review.review_settings(who.tenant_id)
        return kit.page(
            request,
            "evidence_review.html",
            who,
            MANAGE,
            title="Activity review",
            month=wanted,
            queue=queue,
            labels=LABELS,
            hours=settings.hours,
            large_reads=settings.large_reads,
            max_large_reads=MAX_LARGE_READS,
            day_names=list(enumerate(DAY_NAMES)),
        )

    def back(form: Any) -> str:
        # To the month the form was on.
        return f"/evidence/review?month={_month(str(form.get('month', '')))}"

    @app.post("/evidence/review/sign-off")
    async def sign_off(request: Request) -> Response:
        def act(who: Session, form: Any) -> None:
            month = _month(str(form.get("month", "")))
            review.sign_off(who.tenant_id, month, str(form.get("note", ""))[:2000], who.actor)

        return await kit.act(request, MANAGE, act, back)

    @app.post("/evidence/review/hours")
    async def hours(request: Request) -> Response:
        def act(who: Session, form: Any) -> None:
            current = review.review_settings(who.tenant_id)
            review.set_review_settings(who.tenant_id, _settings(form, current), who.actor)

        return await kit.act(request, MANAGE, act, back)
