"""The secure forms pages of the console (``ConsoleSection``): definitions and submissions.

Definitions are the API's ``FormDefinition`` as JSON; ``static/forms.js`` (the console's
own script file, the CSP allows no other) adds a field-by-field editor that writes into
that JSON, and makes the preview apply conditional fields as they are answered.  Without
the script the JSON is edited as text.  "Preview" renders the edited fields with the very
template ``/f`` serves (``forms.web.preview_fields``), on the server.  Saving publishes a
new version; earlier versions stay listed.  The submissions list and its CSV carry facts
only (ids, times, status, sizes, digests); the answers are sealed and opening one needs
``content.read`` as well as ``forms.manage``, and is audited by ``FormSubmissions.read``.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.errors import NotFound, SealmailError, ValidationFailed
from sealmail.evidence.tabular import table_csv
from sealmail.forms.definition import FormDefinition
from sealmail.forms.service import Forms
from sealmail.forms.states import SubmissionStatus
from sealmail.forms.submissions import FormSubmissions, Search
from sealmail.forms.web import preview_fields
from sealmail.tenancy.credentials import Principal
from sealmail.users.model import Session
from sealmail.users.roles import Permission
from sealmail.web import security

P = Permission.MANAGE_FORMS
STATUSES = tuple(SubmissionStatus)
MAX_DEFINITION = 256 * 1024
CSV_ROWS = 5000
CSV_HEADER = ("id", "form_id", "version", "received_at", "status", "status_reason", "size", "files", "digest")
STARTER = {
    "title": "New form",
    "sender": "forms@clinic.example",
    "recipients": ["frontdesk@clinic.example"],
    "fields": [{"name": "full_name", "label": "Full name", "type": "text", "required": True}],
}


SCRIPT = resources.files("sealmail.console").joinpath("templates/forms.js").read_text(encoding="utf-8")


def conditions(d: FormDefinition | None) -> str:
    """The preview's show-only-when rules, for ``forms.js`` (a data attribute, never a script)."""
    if d is None:
        return "[]"
    rules = [
        {"name": f.name, "field": f.show_if.field, "equals": f.show_if.equals} for f in d.fields if f.show_if
    ]
    return json.dumps(rules)


def principal(who: Session) -> Principal:
    return Principal(who.tenant_id, who.actor, frozenset({"admin"}))


def parse_definition(text: str) -> tuple[FormDefinition | None, list[str]]:
    """The edited JSON as a definition, or the problems a person can act on."""
    if len(text) > MAX_DEFINITION:
        return None, [f"the definition is larger than {MAX_DEFINITION // 1024} KiB"]
    try:
        return FormDefinition.model_validate_json(text or "{}"), []
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'definition'}: {e['msg']}" for e in exc.errors()]
        return None, problems[:20]


def day(value: str) -> datetime | None:
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def search_of(request: Request) -> tuple[Search, dict[str, str]]:
    q = request.query_params
    status = q.get("status", "")
    status = status if status in STATUSES else ""
    since, until = day(q.get("since", "")), day(q.get("until", ""))
    shown = {
        "form": q.get("form", "")[:40],
        "status": status,
        "since": since.date().isoformat() if since else "",
        "until": until.date().isoformat() if until else "",
    }
    # "until" names a day, so the window ends after it.
    return Search(
        SubmissionStatus(status) if status else None, since, until + timedelta(days=1) if until else None
    ), shown


def section(forms: Forms, subs: FormSubmissions) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        def editor(
            request: Request, who: Session, form: dict[str, Any] | None, text: str, **ctx: Any
        ) -> Response:
            history = forms.versions(principal(who), form["id"]) if form else []
            title = form["name"] if form else "New form"
            return kit.render(
                request, "forms_edit.html", status=ctx.pop("status", 200), title=title, scripted=True,
                who=who, form=form, text=text, history=history, csrf=kit.csrf(request), **ctx,
            )  # fmt: skip

        @app.get("/static/forms.js", include_in_schema=False)
        def forms_script() -> Response:
            return security.harden(Response(SCRIPT, media_type="text/javascript"), "default-src 'none'")

        @app.get("/forms")
        def forms_list(request: Request) -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            rows = forms.list(principal(who), limit=200)["data"]
            return kit.render(request, "forms_list.html", title="Forms", who=who, rows=rows)

        @app.get("/forms/new")
        def forms_new(request: Request) -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            return editor(request, who, None, json.dumps(STARTER, indent=2))

        @app.get("/forms/{form_id}")
        def forms_one(request: Request, form_id: str, version: int = 0) -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            try:
                form = forms.get(principal(who), form_id[:40], version or None)
            except NotFound as exc:
                return kit.render(
                    request, "status.html", status=404, title="Not found", detail=exc.detail, who=who
                )
            d = FormDefinition.model_validate(form["definition"])
            text = json.dumps(form["definition"], indent=2)
            return editor(request, who, form, text, preview=preview_fields(d), conditions=conditions(d))

        async def save(request: Request, form_id: str | None) -> Response:
            acted = await kit.acting(request, P)
            if isinstance(acted, Response):
                return acted
            who, data = acted
            text = str(data.get("definition", ""))
            try:
                form = await run_in_threadpool(forms.get, principal(who), form_id) if form_id else None
            except NotFound as exc:
                return kit.render(
                    request, "status.html", status=404, title="Not found", detail=exc.detail, who=who
                )
            d, problems = parse_definition(text)
            if d is None or data.get("action") == "preview":
                preview = preview_fields(d) if d else None
                status = 422 if problems else 200
                return await run_in_threadpool(
                    editor, request, who, form, text, problems=problems, preview=preview, status=status,
                    conditions=conditions(d),
                )  # fmt: skip
            try:
                if form is None:
                    form = await run_in_threadpool(forms.create, principal(who), d)
                else:
                    form = await run_in_threadpool(forms.update, principal(who), form["id"], d)
            except ValidationFailed as exc:
                problems = [f"{e.get('field')}: {e.get('message')}" for e in exc.extra.get("errors", [])]
                return await run_in_threadpool(
                    editor, request, who, form, text, problems=problems or [exc.detail], status=422
                )
            except SealmailError as exc:
                return await run_in_threadpool(
                    editor, request, who, form, text, problems=[exc.detail], status=409
                )
            return kit.redirect(request, f"/forms/{form['id']}")

        @app.post("/forms")
        async def forms_create(request: Request) -> Response:
            return await save(request, None)

        @app.post("/forms/{form_id}")
        async def forms_update(request: Request, form_id: str) -> Response:
            return await save(request, form_id[:40])

        def listing(
            request: Request, who: Session
        ) -> tuple[list[dict[str, Any]], dict[str, str], str | None]:
            search, shown = search_of(request)
            cursor = request.query_params.get("cursor", "")[:40] or None
            page = subs.list(principal(who), shown["form"] or None, limit=100, cursor=cursor, search=search)
            return page["data"], shown, page["next_cursor"]

        @app.get("/submissions")
        def forms_submissions(request: Request) -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            rows, shown, next_cursor = listing(request, who)
            every = forms.list(principal(who), limit=200)["data"]
            return kit.render(
                request, "forms_submissions.html", title="Form submissions", who=who, rows=rows, shown=shown,
                next_cursor=next_cursor, statuses=STATUSES, forms=every,
                may_read=who.may(Permission.READ_CONTENT),
            )  # fmt: skip

        @app.get("/submissions/export.csv")
        def forms_submissions_csv(request: Request) -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            search, shown = search_of(request)
            page = subs.list(principal(who), shown["form"] or None, limit=CSV_ROWS, search=search)
            rows = [[str(r[k] if r[k] is not None else "") for k in CSV_HEADER[:7]] for r in page["data"]]
            for row, r in zip(rows, page["data"], strict=True):
                row += [str(r["file_count"]), r["digest"]]
            body = table_csv(CSV_HEADER, rows)
            return Response(
                body,
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": 'attachment; filename="form-submissions.csv"'},
            )

        @app.get("/submissions/{submission_id}")
        def forms_submission(request: Request, submission_id: str) -> Response:
            who = kit.signed_in(request, Permission.READ_CONTENT)
            if isinstance(who, Response):
                return who
            found = subs.list(principal(who), None, limit=1, search=Search(submission_id=submission_id[:40]))
            if not found["data"]:
                return kit.render(
                    request,
                    "status.html",
                    status=404,
                    title="Not found",
                    detail="no such submission",
                    who=who,
                )
            if not who.may(P):
                return kit.render(
                    request, "status.html", status=403, title="Not allowed", who=who,
                    detail="reading form submissions needs the forms.manage permission too",
                )  # fmt: skip
            try:
                record = subs.read(principal(who), found["data"][0]["form_id"], submission_id[:40])
            except NotFound as exc:  # shredded under the retention policy
                return kit.render(
                    request, "status.html", status=404, title="Not found", detail=exc.detail, who=who
                )
            return kit.render(request, "forms_submission.html", title="Submission", who=who, s=record)

    return ConsoleSection(
        nav=[("/forms", "Forms", P), ("/submissions", "Submissions", P)],
        mount=mount,
        templates=None,
    )
