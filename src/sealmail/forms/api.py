"""Secure forms over HTTP (``/v1/forms``): definitions and their submissions.

Thin: the rules live in ``forms.service`` and ``forms.submissions``.  Changing forms needs
``admin`` (a form decides where patients' data goes); reading submissions needs ``read``
and every read is audited.  Everything is tenant-scoped: another tenant's form is a 404.
"""

# No ``from __future__ import annotations``: FastAPI reads the ``Annotated`` aliases of
# the route functions at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Query

from sealmail.forms.definition import FormDefinition
from sealmail.forms.schemas import FormOut, FormPageOut, SubmissionOut, SubmissionPageOut
from sealmail.forms.service import Forms
from sealmail.forms.submissions import FormSubmissions
from sealmail.tenancy.service import Principal


def router(forms: Forms, submissions: FormSubmissions, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["forms"])
    Admin = Annotated[Principal, need("admin")]
    Reader = Annotated[Principal, need("read")]
    Limit = Annotated[int, Query(ge=1, le=500)]

    @r.post("/forms", status_code=201, response_model=FormOut, summary="Create a form")
    def create_form(body: FormDefinition, who: Admin) -> dict[str, Any]:
        """Version 1 of a new hosted form; its `url` is live at once."""
        return forms.create(who, body)

    @r.get("/forms", response_model=FormPageOut, summary="List forms")
    def list_forms(who: Reader, limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
        return forms.list(who, limit, cursor)

    @r.get("/forms/{form_id}", response_model=FormOut, summary="Get a form (the current or a given version)")
    def get_form(
        form_id: str, who: Reader, version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
    ) -> dict[str, Any]:
        return forms.get(who, form_id, version)

    @r.put("/forms/{form_id}", response_model=FormOut, summary="Publish a new version of a form")
    def update_form(form_id: str, body: FormDefinition, who: Admin) -> dict[str, Any]:
        """Earlier versions stay: each submission keeps the fields its submitter saw."""
        return forms.update(who, form_id, body)

    @r.delete("/forms/{form_id}", response_model=FormOut, summary="Archive a form")
    def archive_form(form_id: str, who: Admin) -> dict[str, Any]:
        """The hosted page stops answering; versions and submissions stay."""
        return forms.archive(who, form_id)

    @r.get("/forms/{form_id}/submissions", response_model=SubmissionPageOut, summary="List submissions")
    def list_submissions(
        form_id: str, who: Reader, limit: Limit = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        forms.get(who, form_id)  # a 404 for another tenant's form
        return submissions.list(who, form_id, limit, cursor)

    @r.get(
        "/forms/{form_id}/submissions/{submission_id}",
        response_model=SubmissionOut,
        summary="Read a submission (decrypted; audited)",
    )
    def read_submission(form_id: str, submission_id: str, who: Reader) -> dict[str, Any]:
        return submissions.read(who, form_id, submission_id)

    return r
