"""The contacts side of the console's marketing pages (``ConsoleSection``, issue 16):
attribute declarations, CSV import with its progress and error report, export, a contact's
page (attributes, consent by purpose and channel, the ledger, grant and revoke, HIPAA
marketing authorizations recorded and read back with every element) and lists.  Adding or
editing one contact by hand is ``marketing_contact_form``.

Who may do what follows the API's scopes mapped to console permissions: reading needs
``marketing.view``; declaring attributes (the API's ``admin`` scope) needs
``settings.manage``; writing contacts, consent grants, authorizations and lists (the ``send``
scope) needs ``messages.compose``.  A revoke only stops mail, so, like pausing a campaign,
whoever sees the pages may record one (a compliance officer taking a call).

Every value a contact or a person typed is shown through ``safe_display`` (no controls, no
bidi overrides) inside ``<bdi>``, on top of Jinja's escaping.  Ids, never emails, go in
URLs; the services' ``NotFound`` for another tenant's id is the console's 404 page.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

import hashlib
import tempfile
from datetime import UTC, date, datetime, time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import Response, StreamingResponse

from sealmail.console import marketing_contact_form
from sealmail.console.kit import Kit
from sealmail.console.marketing_pages import classes_for
from sealmail.console.web import ConsoleSection
from sealmail.domain.display_text import safe_display
from sealmail.domain.marketing import Channel, ConsentState, PhiClass, Purpose
from sealmail.domain.numerals import whole_number
from sealmail.errors import Conflict, ValidationFailed
from sealmail.marketing.attributes import AttrType
from sealmail.marketing.contacts import normalize_email
from sealmail.marketing.service import Marketing
from sealmail.marketing.states import ImportStatus
from sealmail.users.model import Session
from sealmail.users.roles import Permission
from sealmail.web.uploads import check_declared_length

MAX_IMPORT_BYTES = 512 << 20  # as the API's upload
ERRORS_PAGE = 50
MEMBERS_PAGE = 100
HISTORY_PAGE = 200  # consent events on a contact's page
LISTS_PAGE = 100
MAX_EMAILS = 500  # added to a list from one form
MAX_DOCUMENT = 20 << 20  # a signed authorization, hashed and not kept
SAVED = {
    "added": "Contact added.",
    "updated": "This address was already a contact: it was updated.",
    "changed": "Changes saved.",
}
STATEMENT_LABELS = {
    "right_to_revoke": "The right to revoke in writing, and how",
    "conditioning": "Treatment or payment is not conditioned on signing",
    "redisclosure": "Information disclosed may be redisclosed and lose protection",
}


def shown(value: Any, max_len: int = 500) -> str:
    """A stored value as a person may safely read it (markup is escaped by the template)."""
    return safe_display(value if isinstance(value, str) else str(value), max_len)


def _problems(exc: ValidationFailed | Conflict) -> list[str]:
    if isinstance(exc, ValidationFailed):
        return [f"{e['field']}: {e['message']}" for e in exc.extra.get("errors", [])] or [exc.detail]
    return [exc.detail]


def _bounded(value: str, default: int, top: int) -> int:
    """A paging number from the query: digits only, clamped (never a 500)."""
    number = whole_number(value)
    return min(number, top) if number is not None else default


def section(mk: Marketing) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        _attribute_pages(app, kit, mk)
        _import_pages(app, kit, mk)
        marketing_contact_form.mount(app, kit, mk)  # before /marketing/contacts/{id}: "new"
        _contact_pages(app, kit, mk)
        _list_pages(app, kit, mk)

    return ConsoleSection(nav=[], mount=mount, templates="sealmail.marketing")


# -- attribute declarations ----------------------------------------------------------------------
def _attribute_pages(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    def page(request: Request, who: Session, status: int = 200, **ctx: Any) -> Response:
        return kit.page(
            request, "marketing_attributes.html", who, Permission.MANAGE_SETTINGS, status=status,
            title="Contact attributes", attributes=mk.attributes.list(who.tenant_id),
            types=list(AttrType), classes=list(PhiClass), **ctx,
        )  # fmt: skip

    @app.get("/marketing/attributes")
    def attributes(request: Request) -> Response:
        who = kit.signed_in(request, Permission.VIEW_MARKETING)
        return who if isinstance(who, Response) else page(request, who)

    @app.post("/marketing/attributes")
    async def declare(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_SETTINGS)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        entered = {k: str(form.get(k, ""))[:2000] for k in ("name", "type", "phi_class", "choices")}
        choices = [c for c in entered["choices"].replace("\r", "").split("\n") if c.strip()][:101]
        try:
            await run_in_threadpool(
                lambda: mk.attributes.define(
                    who.tenant_id,
                    name=entered["name"].strip(),
                    type_=entered["type"],
                    phi_class=entered["phi_class"],
                    choices=choices or None,
                    actor=who.actor,
                )
            )
        except (ValidationFailed, Conflict) as exc:
            status, problems = (409 if isinstance(exc, Conflict) else 422), _problems(exc)
            return await run_in_threadpool(
                lambda: page(request, who, status, problems=problems, entered=entered)
            )
        return kit.redirect(request, "/marketing/attributes")


# -- import and export --------------------------------------------------------------------------
def _import_pages(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    @app.get("/marketing/contacts/import")
    def import_form(request: Request) -> Response:
        who = kit.signed_in(request, Permission.COMPOSE)
        if isinstance(who, Response):
            return who
        return kit.page(
            request, "marketing_import.html", who, Permission.COMPOSE, title="Import contacts",
            attributes=mk.attributes.list(who.tenant_id), limit_mb=MAX_IMPORT_BYTES >> 20,
        )  # fmt: skip

    @app.post("/marketing/contacts/import")
    async def import_start(request: Request) -> Response:
        # Refused before a byte of the body is parsed: uvicorn holds a body to its length.
        too_large = f"A CSV import is at most {MAX_IMPORT_BYTES >> 20} MB; split the file."
        check_declared_length(request, MAX_IMPORT_BYTES + 64 * 1024, too_large)
        acted = await kit.acting(request, Permission.COMPOSE, max_files=1)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise HTTPException(422, "Choose a CSV file to import.")
        # Copied out of the request's own spool: that one is closed when the response is sent,
        # and the import goes on after it.
        spool = tempfile.TemporaryFile()  # the importer closes it when the import ends
        try:
            while block := await upload.read(1 << 20):
                spool.write(block)
            started = await run_in_threadpool(mk.importer.start_csv, who.tenant_id, spool, actor=who.actor)
        except BaseException:
            spool.close()
            raise
        return kit.redirect(request, f"/marketing/imports/{started['id']}")

    @app.get("/marketing/imports/{import_id}")
    def import_status(request: Request, import_id: str, offset: str = "0") -> Response:
        who = kit.signed_in(request, Permission.VIEW_MARKETING)
        if isinstance(who, Response):
            return who
        job = mk.importer.get(who.tenant_id, import_id[:40], limit=1)
        at = _bounded(offset, 0, 10_000)
        errors = mk.importer.errors(who.tenant_id, job["id"], offset=at, limit=ERRORS_PAGE)
        # A stalled import will not move again: stop refreshing and say what to do.
        running = job["status"] == ImportStatus.PROCESSING and not job["stalled"]
        total = job["total"] if job["total"] is not None else job["rows"]
        return kit.page(
            request, "marketing_import_status.html", who, Permission.COMPOSE, title="Import",
            job=job, running=running, completed=ImportStatus.COMPLETED, total=max(total, job["rows"]),
            errors=errors,
            previous=max(at - ERRORS_PAGE, 0) if at else None,
            following=at + ERRORS_PAGE if at + ERRORS_PAGE < errors["total"] else None,
        )  # fmt: skip

    @app.get("/marketing/imports/{import_id}/errors.csv")
    def import_errors_csv(request: Request, import_id: str) -> Response:
        who = kit.signed_in(request, Permission.VIEW_MARKETING)
        if isinstance(who, Response):
            return who
        lines = mk.importer.errors_csv(who.tenant_id, import_id[:40])
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="import-errors.csv"'},
        )

    @app.get("/marketing/contacts/export.csv")
    def export(request: Request) -> Response:
        who = kit.signed_in(request, Permission.VIEW_MARKETING)
        if isinstance(who, Response):
            return who
        # Only the columns of the classes this role may see; the export itself is audited.
        lines = mk.contacts.export_csv(who.tenant_id, classes_for(who), actor=who.actor)
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="contacts.csv"'},
        )


# -- one contact --------------------------------------------------------------------------------
def _day_at(value: str, field: str, at: time) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(value.strip()[:10]), at, UTC) if value.strip() else None
    except ValueError as exc:
        raise ValidationFailed([{"field": field, "message": "is a date, YYYY-MM-DD"}]) from exc


def _authorization_body(form: Any, document: bytes | None) -> dict[str, Any]:
    """The form as the API's authorization body; the service then applies the same 164.508
    checks as for the API (required elements, statements, expiry, remuneration)."""
    text = {k: str(form.get(k, "")).strip()[:1000] for k in (
        "purpose", "information", "disclosed_by", "disclosed_to", "purpose_statement", "signed_by",
        "remuneration_statement", "document_sha256",
    )}  # fmt: skip
    digest = hashlib.sha256(document).hexdigest() if document else text["document_sha256"]
    return {
        **text,
        "purpose": text["purpose"] or "marketing",
        # An authorization runs to the end of its expiry day; the signature, from its start.
        "expires_at": _day_at(_text(form, "expires_at"), "expires_at", time(23, 59, 59)),
        "signed_at": _day_at(_text(form, "signed_at"), "signed_at", time(0, 0)),
        "statements": [s for s in form.getlist("statements") if s in STATEMENT_LABELS][:3],
        "remuneration": form.get("remuneration") == "on",
        "remuneration_statement": text["remuneration_statement"] or None,
        "document_sha256": digest,
        "source": "staff",
    }


def _readable(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored authorization for the page: what a person typed or signed made safe to show."""
    typed = ("information", "disclosed_by", "disclosed_to", "purpose_statement", "signed_by",
             "remuneration_statement", "created_by")  # fmt: skip
    return {**stored, **{k: shown(stored[k] or "", 1000) for k in typed}}


def _text(form: Any, key: str) -> str:
    return str(form.get(key, ""))[:40]


def _contact_pages(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    def page(request: Request, who: Session, contact_id: str, status: int = 200, **ctx: Any) -> Response:
        allowed = classes_for(who)
        contact = mk.contacts.get(who.tenant_id, contact_id, allowed)  # NotFound: 404 page
        defs = mk.attributes.defs(who.tenant_id)
        masked = sorted(n for n, d in defs.items() if d.phi_class not in allowed)
        states = {
            (c["purpose"], c["channel"]): c for c in mk.consent.current(who.tenant_id, contact_id)["consents"]
        }
        grid = [
            {"purpose": str(p), "channel": str(ch), **states.get((str(p), str(ch)), {"state": None})}
            for p in Purpose
            for ch in Channel
        ]
        # The newest events; "Older history" pages back with the ledger's own cursor.
        ledger = mk.consent.history_page(
            who.tenant_id, contact_id, limit=HISTORY_PAGE, cursor=request.query_params.get("history", "")[:40]
        )
        history = ledger["history"]
        # Whoever may see the contact sees its authorizations: a compliance officer must be
        # able to check each one.  The read is audited (``mkt_authorization:read``).
        stored = mk.consent.authorizations(who.tenant_id, contact_id, actor=who.actor)
        return kit.page(
            request, "marketing_contact.html", who, Permission.COMPOSE, status=status,
            title="Contact", contact={
                **contact, "email": shown(contact["email"], 320),
                "attributes": {k: shown(v) for k, v in contact["attributes"].items()},
            },
            masked=[(n, str(defs[n].phi_class)) for n in masked], grid=grid,
            history=[
                {**h, "evidence": shown(h["evidence"] or ""), "actor": shown(h["actor"], 80)} for h in history
            ],
            authorizations=[_readable(a) for a in stored], older=ledger["next_cursor"],
            purposes=list(Purpose), channels=list(Channel), statements=STATEMENT_LABELS,
            revocable={ConsentState.GRANTED, ConsentState.AUTHORIZED},
            may_revoke=who.may(Permission.VIEW_MARKETING),
            saved=SAVED.get(request.query_params.get("saved", "")), **ctx,
        )  # fmt: skip

    @app.get("/marketing/contacts/{contact_id}")
    def contact(request: Request, contact_id: str) -> Response:
        who = kit.signed_in(request, Permission.VIEW_MARKETING)
        return who if isinstance(who, Response) else page(request, who, contact_id[:40])

    @app.post("/marketing/contacts/{contact_id}/consent")
    async def consent(request: Request, contact_id: str) -> Response:
        cid = contact_id[:40]
        # A revoke stops mail, so anyone with the marketing pages may record one; a grant
        # lets mail go, so it needs the right to send.
        acted = await kit.acting(request, Permission.VIEW_MARKETING)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        action = str(form.get("action", ""))[:20]
        if action == "grant" and not who.may(Permission.COMPOSE):
            raise HTTPException(403, "Your role may revoke consent but not grant it.")
        try:
            await run_in_threadpool(
                lambda: mk.consent.change(
                    who.tenant_id,
                    cid,
                    purpose=str(form.get("purpose", ""))[:20],
                    channel=str(form.get("channel", "email"))[:20],
                    action=action,
                    source="staff",
                    evidence=str(form.get("evidence", "")).strip()[:500] or None,
                    actor=who.actor,
                )
            )
        except ValidationFailed as exc:
            problems = _problems(exc)
            return await run_in_threadpool(lambda: page(request, who, cid, 422, consent_problems=problems))
        return kit.redirect(request, f"/marketing/contacts/{cid}")

    @app.post("/marketing/contacts/{contact_id}/authorizations")
    async def authorize(request: Request, contact_id: str) -> Response:
        cid = contact_id[:40]
        too_large = f"The signed document is at most {MAX_DOCUMENT >> 20} MB."
        check_declared_length(request, MAX_DOCUMENT + 64 * 1024, too_large)
        acted = await kit.acting(request, Permission.COMPOSE, max_files=1)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        upload = form.get("document")
        document = await upload.read() if isinstance(upload, UploadFile) and upload.filename else None
        try:
            body = _authorization_body(form, document)
            await run_in_threadpool(lambda: mk.consent.authorize(who.tenant_id, cid, body, actor=who.actor))
        except ValidationFailed as exc:
            problems = _problems(exc)
            entered = {k: str(form.get(k, ""))[:1000] for k in form if k not in ("csrf", "document")}
            entered["statements"] = form.getlist("statements")
            return await run_in_threadpool(
                lambda: page(request, who, cid, 422, auth_problems=problems, entered=entered)
            )
        return kit.redirect(request, f"/marketing/contacts/{cid}")


# -- lists ----------------------------------------------------------------------------------------
def _list_pages(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    def lists_page(request: Request, who: Session, status: int = 200, **ctx: Any) -> Response:
        cursor = request.query_params.get("cursor", "")[:40]
        got = mk.lists.page(who.tenant_id, limit=LISTS_PAGE, cursor=cursor)
        lists = [{**lst, "name": shown(lst["name"], 100)} for lst in got["data"]]
        return kit.page(
            request, "marketing_lists.html", who, Permission.COMPOSE, status=status, title="Lists",
            lists=lists, next_cursor=got["next_cursor"], paged=bool(cursor), **ctx,
        )  # fmt: skip

    def one_page(
        request: Request, who: Session, lid: str, after: str = "", status: int = 200, **ctx: Any
    ) -> Response:
        found = mk.lists.get(who.tenant_id, lid)
        members = mk.lists.members(who.tenant_id, found["id"], limit=MEMBERS_PAGE, after=after)
        return kit.page(
            request, "marketing_list.html", who, Permission.COMPOSE, status=status,
            title="List", found={**found, "name": shown(found["name"], 100)},
            members=[{**m, "email": shown(m["email"], 320)} for m in members["data"]],
            next_cursor=members["next_cursor"], **ctx,
        )  # fmt: skip

    @app.get("/marketing/lists")
    def lists(request: Request) -> Response:
        who = kit.signed_in(request, Permission.VIEW_MARKETING)
        return who if isinstance(who, Response) else lists_page(request, who)

    @app.post("/marketing/lists")
    async def create(request: Request) -> Response:
        acted = await kit.acting(request, Permission.COMPOSE)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        name = str(form.get("name", ""))[:200]
        try:
            made = await run_in_threadpool(mk.lists.create, who.tenant_id, name, who.actor)
        except (ValidationFailed, Conflict) as exc:
            status, problems = (409 if isinstance(exc, Conflict) else 422), _problems(exc)
            return await run_in_threadpool(lambda: lists_page(request, who, status, problems=problems))
        return kit.redirect(request, f"/marketing/lists/{made['id']}")

    @app.get("/marketing/lists/{list_id}")
    def one(request: Request, list_id: str, after: str = "") -> Response:
        who = kit.signed_in(request, Permission.VIEW_MARKETING)
        return who if isinstance(who, Response) else one_page(request, who, list_id[:40], after[:40])

    @app.post("/marketing/lists/{list_id}/members")
    async def add(request: Request, list_id: str) -> Response:
        acted = await kit.acting(request, Permission.COMPOSE)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        lid = list_id[:40]
        lines = str(form.get("emails", "")).replace(",", "\n").splitlines()
        wanted = [e.strip() for e in lines if e.strip()]
        if len(wanted) > MAX_EMAILS:
            return await run_in_threadpool(
                lambda: one_page(
                    request, who, lid, status=422, problems=[f"At most {MAX_EMAILS} addresses at a time."]
                )
            )

        def do() -> tuple[int, int]:
            found = mk.lists.get(who.tenant_id, lid)
            ids: list[str] = []
            unknown = 0
            for email in wanted:
                try:
                    cid = mk.contacts.find(who.tenant_id, normalize_email(email))
                except ValueError:
                    cid = None
                if cid is None:
                    unknown += 1
                else:
                    ids.append(cid)
            if not ids:
                return 0, unknown
            added: dict[str, Any] = mk.lists.add(who.tenant_id, found["name"], ids, who.actor)
            if added["joined"]:
                # Joining may start the journeys this list triggers, as through the API.
                mk.journeys.list_joined(who.tenant_id, found["name"], added["joined"], actor=who.actor)
            return int(added["added"]), unknown

        added, unknown = await run_in_threadpool(do)
        note = f"{added} added." + (
            f" {unknown} addresses are not contacts of this organisation." if unknown else ""
        )
        return await run_in_threadpool(lambda: one_page(request, who, lid, notice=note))

    @app.post("/marketing/lists/{list_id}/members/remove")
    async def remove(request: Request, list_id: str) -> Response:
        lid = list_id[:40]

        def do(who: Session, form: Any) -> None:
            found = mk.lists.get(who.tenant_id, lid)
            mk.lists.remove(who.tenant_id, found["name"], [str(form.get("contact_id", ""))[:40]], who.actor)

        return await kit.act(request, Permission.COMPOSE, do, f"/marketing/lists/{lid}")
