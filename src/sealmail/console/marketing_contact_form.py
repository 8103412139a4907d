"""The console's form to add one contact by hand, or edit one contact's fields (issue 16).

The same write as ``POST /v1/marketing/contacts``: the body is checked by the API's own
``ContactIn`` (lengths, status), then ``Contacts.save`` validates it against the tenant's
declarations, upserts by email and audits ``mkt_contact:saved`` in one transaction, so a
refused form stores nothing.  Writing needs ``messages.compose`` (the API's ``send`` scope),
and, as with a ``send`` key or a CSV import, that may set an attribute of any PHI class.
One of a class the role may not see is write-only here: never shown or echoed back, and
left as it is when its field is left blank.

An address that is already a contact updates it, as the API does; the contact's page then
says so.  Editing keeps the address (it is what a contact is found by) and never clears a
phone or time zone (the API cannot either); a blank visible attribute is cleared.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.marketing_pages import classes_for
from sealmail.domain.display_text import safe_display
from sealmail.domain.marketing import ContactStatus
from sealmail.errors import ValidationFailed
from sealmail.marketing.attributes import MAX_ATTRIBUTES, AttributeDef
from sealmail.marketing.contacts import ContactData
from sealmail.marketing.schemas import ContactIn
from sealmail.marketing.service import Marketing
from sealmail.users.model import Session
from sealmail.users.roles import Permission

FIELDS = ("email", "phone", "tz", "status")
MAX_FIELD = 2000  # what is kept of a field to check and show again; the checks then refuse it
ATTR = "attributes."  # a field's name for an attribute, as the validator names its errors


def _problems(exc: ValidationFailed | ValidationError) -> list[str]:
    """Field and message, never the value (a pydantic error carries the input: dropped)."""
    if isinstance(exc, ValidationError):
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return [f"{e['field']}: {e['message']}" for e in exc.extra.get("errors", [])] or [exc.detail]


def _entered(form: Any, defs: dict[str, AttributeDef]) -> tuple[dict[str, str], dict[str, str]]:
    """The contact fields and the declared attributes' fields as typed (bounded)."""
    fields = {k: str(form.get(k, ""))[:MAX_FIELD] for k in FIELDS}
    values = {n: str(form.get(ATTR + n, ""))[:MAX_FIELD] for n in defs if ATTR + n in form}
    return fields, values


def _body(fields: dict[str, str], values: dict[str, str], keep: set[str]) -> ContactData:
    """The API's body from the form: blank phone, zone and status keep what is stored; a
    blank attribute is cleared only when named in ``keep`` (a visible field while editing)."""
    attributes = {n: v for n, v in values.items() if v.strip() or n in keep}
    # As FastAPI checks the API's JSON body: the same model, from the same kind of mapping.
    checked = ContactIn.model_validate(
        {
            "email": fields["email"].strip(),
            "phone": fields["phone"].strip() or None,
            "tz": fields["tz"].strip() or None,
            "status": fields["status"].strip() or None,
            "attributes": attributes,
        }
    )
    return ContactData(checked.email, checked.phone, checked.tz, checked.status, dict(checked.attributes))


def mount(app: FastAPI, kit: Kit, mk: Marketing) -> None:
    """``/marketing/contacts/new`` and ``/marketing/contacts/{id}/edit``: mounted before
    ``/marketing/contacts/{id}`` so ``new`` is not taken for an id."""

    def form_page(request: Request, who: Session, status: int = 200, **ctx: Any) -> Response:
        allowed = classes_for(who)
        defs = mk.attributes.defs(who.tenant_id)
        fields = [
            {**d.as_dict(), "visible": d.phi_class in allowed}
            for d in sorted(defs.values(), key=lambda d: d.name)
        ]
        if ctx.get("contact"):  # the address is only shown (read-only): safe to read
            ctx["contact"] = {**ctx["contact"], "email": safe_display(ctx["contact"]["email"], 320)}
        return kit.page(
            request, "marketing_contact_form.html", who, Permission.COMPOSE, status=status,
            title="Edit contact" if ctx.get("contact") else "Add contact", fields=fields,
            statuses=list(ContactStatus), **ctx,
        )  # fmt: skip

    async def submit(request: Request, contact_id: str | None) -> Response:
        acted = await kit.acting(request, Permission.COMPOSE, max_fields=len(FIELDS) + MAX_ATTRIBUTES + 2)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        allowed = classes_for(who)
        defs = await run_in_threadpool(mk.attributes.defs, who.tenant_id)
        fields, values = _entered(form, defs)
        visible = {n for n, d in defs.items() if d.phi_class in allowed}
        stored = None
        if contact_id is not None:  # NotFound (another tenant's id): the 404 page
            stored = await run_in_threadpool(mk.contacts.get, who.tenant_id, contact_id, allowed)
            fields["email"] = stored["email"]
        try:
            body = _body(fields, values, visible if stored else set())
            saved, created = await run_in_threadpool(
                lambda: mk.contacts.save(who.tenant_id, body, actor=who.actor, classes=allowed)
            )
        except (ValidationError, ValidationFailed) as exc:
            problems = _problems(exc)
            kept = {n: v for n, v in values.items() if n in visible}  # write-only: not echoed
            return await run_in_threadpool(
                lambda: form_page(
                    request, who, 422, problems=problems, entered=fields, values=kept, contact=stored
                )
            )
        done = "changed" if stored else "added" if created else "updated"
        return kit.redirect(request, f"/marketing/contacts/{saved['id']}?saved={done}")

    @app.get("/marketing/contacts/new")
    def new_contact(request: Request) -> Response:
        who = kit.signed_in(request, Permission.COMPOSE)
        return who if isinstance(who, Response) else form_page(request, who, entered={}, values={})

    @app.post("/marketing/contacts/new")
    async def add_contact(request: Request) -> Response:
        return await submit(request, None)

    @app.get("/marketing/contacts/{contact_id}/edit")
    def edit_contact(request: Request, contact_id: str) -> Response:
        who = kit.signed_in(request, Permission.COMPOSE)
        if isinstance(who, Response):
            return who
        stored = mk.contacts.get(who.tenant_id, contact_id[:40], classes_for(who))
        entered = {"email": stored["email"], "phone": stored["phone"] or "", "tz": stored["tz"] or ""}
        entered["status"] = stored["status"] or ""
        values = {k: _as_field(v) for k, v in stored["attributes"].items()}
        return form_page(request, who, entered=entered, values=values, contact=stored)

    @app.post("/marketing/contacts/{contact_id}/edit")
    async def save_contact(request: Request, contact_id: str) -> Response:
        return await submit(request, contact_id[:40])


def _as_field(value: Any) -> str:
    """A stored value as its form field holds it (a boolean as the select's option)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
