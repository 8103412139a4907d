"""Stored templates, preview, batch and bulk sending (``/v1/templates``, ``/v1/messages/…``).

Thin: every rule lives in ``sealmail.templates``.  Scopes: reading and previewing need
``read``; changing templates and sending need ``send``.  All objects are tenant-scoped,
so another tenant's template or bulk job is a 404.
"""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.errors import InvalidRequest, ValidationFailed
from sealmail.messages.schemas import AcceptedOut
from sealmail.messages.service import Idempotency, request_hash
from sealmail.templates import personalize
from sealmail.templates.batch import BatchItem, ItemResult, run_batch
from sealmail.templates.bulk import BulkSender, BulkSpec
from sealmail.templates.render import Compiled, Source
from sealmail.templates.schemas import (
    BatchIn,
    BatchItemIn,
    BatchOut,
    BulkIn,
    BulkJobOut,
    PreviewIn,
    PreviewOut,
    TemplateContentIn,
    TemplateIn,
    TemplateListOut,
    TemplateOut,
    TemplateWithVersionsOut,
)
from sealmail.templates.store import TemplateStore
from sealmail.tenancy.service import Principal


def _idempotency(key: str | None, body: bytes) -> Idempotency | None:
    if key is None:
        return None
    # Room for the "#<index>" suffix each item gets, within the 256-character key column.
    if not key or len(key) > 240 or not key.isprintable():
        raise InvalidRequest("Idempotency-Key must be 1–240 printable characters")
    return Idempotency(key, request_hash(body))


def router(store: TemplateStore, sender: BulkSender, need: Any) -> APIRouter:
    """``sender`` carries the batch's limits too (Message-ID domain, recipients per message)."""
    r = APIRouter(prefix="/v1")
    messages = sender.messages
    Reader = Annotated[Principal, need("read")]
    Sender = Annotated[Principal, need("send")]

    @r.get("/templates", tags=["templates"], response_model=TemplateListOut, summary="List templates")
    def list_templates(who: Reader) -> TemplateListOut:
        """The active (newest) version of each template."""
        return TemplateListOut(data=[TemplateOut.of(t) for t in store.list(who.tenant_id)])

    @r.post(
        "/templates",
        status_code=201,
        tags=["templates"],
        response_model=TemplateOut,
        summary="Create a template",
    )
    def create_template(body: TemplateIn, who: Sender) -> TemplateOut:
        """Version 1 of a new template; 409 if the name is taken (PUT adds versions)."""
        source = Source(body.subject, body.html, body.text)
        return TemplateOut.of(store.create(who.tenant_id, body.name, source, who.credential_id))

    @r.get(
        "/templates/{name}",
        tags=["templates"],
        response_model=TemplateWithVersionsOut,
        summary="Get a template (the active or a given version)",
    )
    def get_template(
        name: str, who: Reader, version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
    ) -> TemplateWithVersionsOut:
        found = store.get(who.tenant_id, name, version)
        return TemplateWithVersionsOut.of(found.template, versions=list(found.versions))

    @r.put(
        "/templates/{name}",
        tags=["templates"],
        response_model=TemplateOut,
        summary="Add a template version",
    )
    def update_template(name: str, body: TemplateContentIn, who: Sender) -> TemplateOut:
        """A new version, which becomes the active one; earlier versions stay readable."""
        source = Source(body.subject, body.html, body.text)
        return TemplateOut.of(store.add_version(who.tenant_id, name, source, who.credential_id))

    @r.delete(
        "/templates/{name}", status_code=204, tags=["templates"], summary="Delete a template and its versions"
    )
    def delete_template(name: str, who: Sender) -> None:
        store.delete(who.tenant_id, name, who.credential_id)

    @r.post(
        "/templates/{name}/preview",
        tags=["templates"],
        response_model=PreviewOut,
        summary="Render a template without sending",
    )
    def preview_template(name: str, body: PreviewIn, who: Reader) -> dict[str, Any]:
        """Render with the given variables; nothing is stored or sent.  422 on a render error."""
        source, version = store.source(who.tenant_id, name, body.version)
        rendered = personalize.render_or_fail(Compiled(source), body.template_data)
        return {
            "name": name,
            "version": version,
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
        }

    @r.post(
        "/messages/batch",
        tags=["messages"],
        response_model=BatchOut,
        # Each item carries the fields of its outcome only (no nulls for the other's).
        response_model_exclude_unset=True,
        summary="Send up to 500 independent messages",
    )
    async def send_batch(
        request: Request,
        body: BatchIn,
        who: Sender,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """Up to 500 independent messages; 200 with one ordered result per item.

        Each result is ``{"index", "status": 202, "outcome": "accepted", "message": {…}}``
        or ``{"index", "status": 4xx, "outcome": "error", "problem": {RFC 9457}}``.
        """
        _idempotency(idempotency_key, await request.body())
        results = await run_in_threadpool(
            run_batch,
            messages,
            store,
            who,
            batch_items(body.messages, keyed=idempotency_key is not None),
            domain=sender.domain,
            max_recipients=sender.max_recipients,
            idempotency_key=idempotency_key,
        )
        data = [batch_item_body(x) for x in results]
        accepted = sum(1 for x in results if x.accepted is not None)
        return {"accepted": accepted, "failed": len(results) - accepted, "data": data}

    def bulk_spec(who: Principal, body: BulkIn, idem: Idempotency | None) -> BulkSpec:
        # Checked once for the whole request rather than failing every recipient alike.
        try:
            parse_address(body.from_, "from")
        except InvalidAddress as exc:
            raise ValidationFailed([{"field": exc.field, "message": exc.reason}]) from exc
        version: int | None = None
        if body.template is not None:
            if body.subject is not None or body.html is not None or body.text is not None:
                raise ValidationFailed(
                    [{"field": "template", "message": "give either template or subject/html/text, not both"}]
                )
            source, version = store.source(who.tenant_id, body.template, body.template_version)
        elif body.subject is None:
            raise ValidationFailed([{"field": "subject", "message": "give a template or a subject"}])
        else:
            source = Source(body.subject, body.html, body.text)
        return BulkSpec(
            compiled=Compiled(source),
            base=body.base_message(),
            shared_data=body.template_data,
            template_name=body.template,
            template_version=version,
            idempotency=idem,
        )

    @r.post(
        "/messages/bulk",
        status_code=202,
        tags=["messages"],
        response_model=BulkJobOut,
        summary="Send one template to up to 10,000 personalized recipients",
    )
    async def send_bulk(
        request: Request,
        body: BulkIn,
        who: Sender,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        """One template to up to 10,000 recipients, each with its own variables.

        Every recipient is rendered, validated and accepted (its own message) before the
        202; per-recipient errors are listed at ``GET /v1/bulk/{id}``.  The job's
        messages carry ``metadata.bulk_id``.
        """
        idem = _idempotency(idempotency_key, await request.body())
        spec = await run_in_threadpool(bulk_spec, who, body, idem)
        job_id = await run_in_threadpool(sender.send, who, spec, body.recipients)
        job = await run_in_threadpool(sender.get, who.tenant_id, job_id)
        return JSONResponse(
            BulkJobOut.of(job).model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/bulk/{job_id}"},
        )

    @r.get(
        "/bulk/{job_id}",
        tags=["messages"],
        response_model=BulkJobOut,
        summary="A bulk job's progress and per-recipient errors",
    )
    def get_bulk(
        job_id: str,
        who: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(pattern=r"^\d{1,9}$")] = None,
    ) -> BulkJobOut:
        """Progress and counts, and per-recipient errors by index (paged by ``cursor``)."""
        return BulkJobOut.of(
            sender.get(who.tenant_id, job_id, limit=limit, after=int(cursor) if cursor else -1)
        )

    return r


def batch_item_body(item: ItemResult) -> dict[str, Any]:
    """``{index, status: 202, outcome: accepted, replayed, message}`` or ``{…, problem}``."""
    if item.accepted is None:
        assert item.error is not None  # an item is accepted or refused
        return {
            "index": item.index,
            "status": item.error.status,
            "outcome": "error",
            "problem": item.error.problem(),
        }
    message = AcceptedOut.from_result(item.accepted).body()
    return {
        "index": item.index,
        "status": 202,
        "outcome": "accepted",
        "replayed": item.replayed,
        "message": message,
    }


def batch_items(raw: list[dict[str, Any]], *, keyed: bool) -> list[BatchItem]:
    """Each item validated on its own (a malformed item is that item's error, not a 422 for
    the batch), with its own body's hash when the request carries an Idempotency-Key."""
    items = []
    for item in raw:
        digest = request_hash(json.dumps(item, sort_keys=True, default=str).encode()) if keyed else None
        try:
            items.append(BatchItem(BatchItemIn.model_validate(item), request_hash=digest))
        except ValidationError as exc:
            items.append(BatchItem(None, _validation_failed(exc), digest))
    return items


def _validation_failed(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    """Pydantic's errors in the catalogue's shape: ``{"field": "a.b", "message": ...}``."""
    errors = [
        {"field": prefix + ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return ValidationFailed(errors)
