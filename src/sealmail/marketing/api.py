"""Secure marketing over HTTP: ``/v1/marketing/…`` (issue 16).

Thin: the rules are in the service modules.  Scopes: ``read`` lists and reads, ``send``
writes contacts and consent and starts campaigns, ``admin`` declares attributes, caps and
segments.  What a key sees of a contact depends on its scopes (``classes_for_scopes``):
only ``admin`` keys see clinical and sensitive attributes, in reads and exports alike.

Size: one short route per operation of the marketing API (about fifty), kept in one router so
the scopes and paging types read alike; the rules are in the service modules.
"""

# No ``from __future__ import annotations``: FastAPI reads the ``Annotated`` aliases of
# the route functions at definition time.
import dataclasses
import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from sealmail.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from sealmail.marketing import imports
from sealmail.marketing.attributes import classes_for_scopes
from sealmail.marketing.contacts import ContactData
from sealmail.marketing.schemas import (
    AttributeIn,
    AttributeList,
    AttributeOut,
    AudiencePage,
    AuthorizationIn,
    AuthorizationList,
    AuthorizationOut,
    CampaignChecks,
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignStats,
    CapIn,
    CapList,
    CapOut,
    ConsentIn,
    ConsentOut,
    ConsentWithHistory,
    ContactBatchIn,
    ContactIn,
    ContactOut,
    ContactPage,
    ConversionIn,
    ConversionOut,
    Enrolled,
    EnrollmentList,
    ImportErrorPage,
    ImportOut,
    JourneyEventIn,
    JourneyIn,
    JourneyList,
    JourneyOut,
    JourneySaved,
    JourneyStatsOut,
    ListIn,
    ListList,
    ListOut,
    MembersAdded,
    MembersIn,
    MembersRemoved,
    PurposeName,
    RulePreviewIn,
    SegmentIn,
    SegmentList,
    SegmentOut,
    SegmentPreview,
)
from sealmail.marketing.service import Marketing
from sealmail.tenancy.service import Principal

UPLOAD_PATH = "/v1/marketing/contacts/import"
PageSize = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str, Query(max_length=40)]
SPOOL_BYTES = 1 << 20  # an upload past this goes to a temporary file, not memory
MAX_IMPORT_BYTES = 512 << 20  # about 5 M contact rows
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "RFC 4180 CSV: email, phone, tz, status, then one column per visible attribute.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def _csv(description: str) -> dict[int | str, dict[str, Any]]:
    """An OpenAPI 200 answer of RFC 4180 CSV."""
    return {200: {"description": description, "content": {"text/csv": {"schema": {"type": "string"}}}}}


ERRORS_CSV = _csv("RFC 4180 CSV: row, column, message; one line per error.")
VARIANT_CSV = _csv("RFC 4180 CSV: one row per variant with its figures (human opens and clicks).")
NODE_CSV = _csv("RFC 4180 CSV: one row per journey step with its figures.")


def _data(c: ContactIn) -> ContactData:
    return ContactData(c.email, c.phone, c.tz, c.status, dict(c.attributes))


async def _receive(request: Request, spool: Any) -> None:
    async for block in request.stream():
        if spool.tell() + len(block) > MAX_IMPORT_BYTES:
            raise PayloadTooLarge(f"a CSV import is at most {MAX_IMPORT_BYTES} bytes; split the file")
        spool.write(block)


def router(mk: Marketing, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1/marketing", tags=["marketing"])
    Reader = Annotated[Principal, need("read")]
    Sender = Annotated[Principal, need("send")]
    Admin = Annotated[Principal, need("admin")]

    @r.post("/attributes", status_code=201, response_model=AttributeOut)
    def define_attribute(body: AttributeIn, who: Admin) -> dict[str, Any]:
        """Declare a typed attribute with its PHI class (audited; declarations are final)."""
        return mk.attributes.define(
            who.tenant_id,
            name=body.name,
            type_=body.type,
            phi_class=body.phi_class,
            choices=body.choices,
            actor=who.credential_id,
        )

    @r.get("/attributes", response_model=AttributeList)
    def list_attributes(who: Reader) -> dict[str, Any]:
        return {"data": mk.attributes.list(who.tenant_id)}

    @r.post("/contacts", status_code=201, response_model=ContactOut)
    def save_contact(body: ContactIn, who: Sender, response: Response) -> dict[str, Any]:
        """Upsert by email: 201 when created, 200 when an existing contact was updated."""
        row, created = mk.contacts.save(
            who.tenant_id, _data(body), actor=who.credential_id, classes=classes_for_scopes(who.scopes)
        )
        if not created:
            response.status_code = 200
        return row

    @r.get("/contacts", response_model=ContactPage)
    def list_contacts(
        who: Reader,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        return mk.contacts.page(who.tenant_id, classes_for_scopes(who.scopes), limit=limit, cursor=cursor)

    @r.get("/contacts/export.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
    def export_contacts(who: Reader) -> StreamingResponse:
        """Every contact as CSV, without the attribute columns this key may not see (audited)."""
        lines = mk.contacts.export_csv(who.tenant_id, classes_for_scopes(who.scopes), actor=who.credential_id)
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
        )

    @r.get("/contacts/{contact_id}", response_model=ContactOut)
    def get_contact(contact_id: str, who: Reader) -> dict[str, Any]:
        return mk.contacts.get(who.tenant_id, contact_id, classes_for_scopes(who.scopes))

    @r.post(
        UPLOAD_PATH.removeprefix("/v1/marketing"),
        response_model=ImportOut,
        responses={
            202: {"model": ImportOut, "description": "Started in the background (``background=true``)."}
        },
    )
    async def import_csv(
        request: Request, who: Sender, response: Response, background: bool = False
    ) -> dict[str, Any]:
        """A CSV upload (``text/csv``), read into a spool and imported a chunk at a time.

        The header names the columns (``email`` required; ``phone``, ``tz``, ``status`` and
        declared attributes).  Bad rows are reported by number and column; the rest go in.
        By default the answer waits for the import (200, the report).  With
        ``background=true`` it is 202 at once with the import's id: follow ``rows`` /
        ``total`` at ``GET /imports/{id}`` and page the report at ``/imports/{id}/errors``.
        """
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("text/csv", "application/csv"):
            raise UnsupportedMediaType("send the file as text/csv")
        if background:
            # Before the upload is read: a tenant at its cap spools nothing.
            await run_in_threadpool(mk.importer.ensure_room, who.tenant_id)
            # On disk, not spooled in memory: the file outlives this request.
            spool = tempfile.TemporaryFile()  # the importer closes it when done
            try:
                await _receive(request, spool)
            except BaseException:
                spool.close()
                raise
            response.status_code = 202
            return await run_in_threadpool(
                mk.importer.start_csv, who.tenant_id, spool, actor=who.credential_id
            )
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spooled:
            await _receive(request, spooled)
            return await run_in_threadpool(_run_csv, mk, who, spooled)

    @r.post("/contacts/batch", response_model=ImportOut)
    def import_rows(body: ContactBatchIn, who: Sender) -> dict[str, Any]:
        """Up to 10,000 contacts as JSON, imported like a CSV (rows numbered from 1)."""
        rows = ((i, _data(c)) for i, c in enumerate(body.contacts, start=1))
        return mk.importer.run(who.tenant_id, rows, actor=who.credential_id)

    @r.get("/imports/{import_id}", response_model=ImportOut)
    def get_import(
        import_id: str, who: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        """An import's progress (``rows`` of ``total``, ``failed``, ``error_count``) and its first errors."""
        return mk.importer.get(who.tenant_id, import_id, limit=limit)

    @r.get("/imports/{import_id}/errors", response_model=ImportErrorPage)
    def import_errors(
        import_id: str,
        who: Reader,
        offset: Annotated[int, Query(ge=0, le=imports.MAX_STORED_ERRORS)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """One page of the per-row error report: row number, column, message (never a value)."""
        return mk.importer.errors(who.tenant_id, import_id, offset=offset, limit=limit)

    @r.get("/imports/{import_id}/errors.csv", response_class=StreamingResponse, responses=ERRORS_CSV)
    def import_errors_csv(import_id: str, who: Reader) -> StreamingResponse:
        """The whole error report as CSV."""
        lines = mk.importer.errors_csv(who.tenant_id, import_id)  # 404 before streaming
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="import-errors.csv"'},
        )

    @r.post("/lists", status_code=201, response_model=ListOut)
    def create_list(body: ListIn, who: Sender) -> dict[str, Any]:
        return mk.lists.create(who.tenant_id, body.name, who.credential_id)

    @r.get("/lists", response_model=ListList)
    def list_lists(who: Reader, limit: PageSize = 100, cursor: Cursor = "") -> dict[str, Any]:
        """A page of lists by name, each with its member count."""
        return mk.lists.page(who.tenant_id, limit=limit, cursor=cursor)

    @r.post("/lists/{name}/members", response_model=MembersAdded)
    def add_members(name: str, body: MembersIn, who: Sender) -> dict[str, Any]:
        """Add contacts; those who joined enter the journeys triggered by joining this list."""
        added = mk.lists.add(who.tenant_id, name, body.contact_ids, who.credential_id)
        joined = added.pop("joined")
        added["enrolled"] = mk.journeys.list_joined(who.tenant_id, name, joined, actor=who.credential_id)
        return added

    @r.post("/lists/{name}/members/remove", response_model=MembersRemoved)
    def remove_members(name: str, body: MembersIn, who: Sender) -> dict[str, Any]:
        """Take contacts off a list (those not on it are ignored)."""
        return mk.lists.remove(who.tenant_id, name, body.contact_ids, who.credential_id)

    @r.post("/contacts/{contact_id}/consent", response_model=ConsentOut)
    def change_consent(contact_id: str, body: ConsentIn, who: Sender) -> dict[str, Any]:
        """Append a grant or revoke to the ledger; the current state moves in the same transaction."""
        return mk.consent.change(
            who.tenant_id,
            contact_id,
            purpose=body.purpose,
            channel=body.channel,
            action=body.action,
            source=body.source,
            evidence=body.evidence,
            actor=who.credential_id,
        )

    @r.get("/contacts/{contact_id}/consent", response_model=ConsentWithHistory)
    def get_consent(
        contact_id: str, who: Reader, limit: PageSize = 200, cursor: Cursor = ""
    ) -> dict[str, Any]:
        """The current consents and a page of the ledger: the newest ``limit`` events, oldest
        first; ``next_cursor`` pages back to older events."""
        out = mk.consent.current(who.tenant_id, contact_id)  # another tenant's contact: 404
        return out | mk.consent.history_page(who.tenant_id, contact_id, limit=limit, cursor=cursor)

    @r.post("/contacts/{contact_id}/authorizations", status_code=201, response_model=AuthorizationOut)
    def authorize(contact_id: str, body: AuthorizationIn, who: Sender) -> dict[str, Any]:
        """Record a signed HIPAA authorization (164.508(c)); writes an ``authorize`` event."""
        return mk.consent.authorize(who.tenant_id, contact_id, body.as_body(), actor=who.credential_id)

    @r.get("/contacts/{contact_id}/authorizations", response_model=AuthorizationList)
    def list_authorizations(contact_id: str, who: Reader) -> dict[str, Any]:
        """Every authorization stored for the contact, newest first, with all its elements
        and its state now (audited: ``mkt_authorization:read`` names the ids shown)."""
        return {"data": mk.consent.authorizations(who.tenant_id, contact_id, actor=who.credential_id)}

    @r.post("/segments", status_code=201, response_model=SegmentOut)
    def save_segment(body: SegmentIn, who: Sender) -> dict[str, Any]:
        """Save a new version of a segment; 403 when it uses PHI classes this key may not see."""
        return mk.segments.save(
            who.tenant_id,
            body.name,
            body.rule,
            actor=who.credential_id,
            allowed=classes_for_scopes(who.scopes),
        )

    @r.get("/segments", response_model=SegmentList)
    def list_segments(who: Reader, limit: PageSize = 100, cursor: Cursor = "") -> dict[str, Any]:
        """A page of segment versions, by name then version."""
        return mk.segments.page(who.tenant_id, limit=limit, cursor=cursor)

    @r.post("/segments/preview", response_model=SegmentPreview)
    def preview_rule(body: RulePreviewIn, who: Sender) -> dict[str, Any]:
        """The live count and a sample of an unsaved rule (audited like a saved one)."""
        return mk.segments.evaluate(
            who.tenant_id,
            rule=body.rule,
            actor=who.credential_id,
            allowed=classes_for_scopes(who.scopes),
            sample=body.sample,
        )

    @r.get("/segments/{ref}/preview", response_model=SegmentPreview)
    def preview_segment(
        ref: str, who: Sender, sample: Annotated[int, Query(ge=0, le=100)] = 20
    ) -> dict[str, Any]:
        """A saved segment's (by id or name, newest version) count and sample, with why each matched."""
        return mk.segments.evaluate(
            who.tenant_id,
            ref=ref,
            actor=who.credential_id,
            allowed=classes_for_scopes(who.scopes),
            sample=sample,
        )

    @r.put("/caps/{purpose}", response_model=CapOut)
    def set_cap(purpose: PurposeName, body: CapIn, who: Admin) -> dict[str, Any]:
        """At most ``max_sends`` messages of this purpose per contact in ``window_hours``."""
        return mk.campaigns.set_cap(
            who.tenant_id, purpose, body.max_sends, body.window_hours, who.credential_id
        )

    @r.get("/caps", response_model=CapList)
    def list_caps(who: Reader) -> dict[str, Any]:
        """Every purpose with its frequency cap (null where none is set)."""
        return {"data": mk.campaigns.caps(who.tenant_id)}

    @r.get("/campaigns", response_model=CampaignPage)
    def list_campaigns(
        who: Reader,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str, Query(max_length=40)] = "",
    ) -> dict[str, Any]:
        """This tenant's campaigns, newest first, with their send tallies."""
        return mk.campaigns.page(who.tenant_id, limit, cursor)

    @r.post("/campaigns", status_code=201, response_model=CampaignOut)
    def create_campaign(body: CampaignIn, who: Sender) -> dict[str, Any]:
        return mk.campaigns.create(
            who.tenant_id, body.as_body(), actor=who.credential_id, allowed=classes_for_scopes(who.scopes)
        )

    @r.get("/campaigns/{campaign_id}", response_model=CampaignOut)
    def get_campaign(campaign_id: str, who: Reader) -> dict[str, Any]:
        return mk.campaigns.get(who.tenant_id, campaign_id)

    @r.post("/campaigns/{campaign_id}/send", status_code=202, response_model=CampaignOut)
    def send_campaign(campaign_id: str, who: Sender) -> dict[str, Any]:
        """Start: the pre-send checks run now (422 naming each failure) and the campaign is
        ``starting``; a worker then snapshots the audience and queues one message per
        contact in the background (``sending``, then ``sent``).  Each message is re-checked
        (consent, authorization, suppression, caps, quiet hours) when a worker claims it."""
        return mk.campaigns.send(who, campaign_id, allowed=classes_for_scopes(who.scopes))

    @r.post("/campaigns/{campaign_id}/pause", response_model=CampaignOut)
    def pause_campaign(campaign_id: str, who: Sender) -> dict[str, Any]:
        """Hold a starting or sending campaign: the expansion stops where it is and queued
        messages wait (409 in any other state)."""
        mk.runs.pause(who.tenant_id, campaign_id, who.credential_id)
        return mk.campaigns.get(who.tenant_id, campaign_id)

    @r.post("/campaigns/{campaign_id}/resume", response_model=CampaignOut)
    def resume_campaign(campaign_id: str, who: Sender) -> dict[str, Any]:
        """Continue a paused campaign where it stopped (409 unless paused)."""
        mk.runs.resume(who.tenant_id, campaign_id, who.credential_id)
        return mk.campaigns.get(who.tenant_id, campaign_id)

    @r.post("/campaigns/{campaign_id}/cancel", response_model=CampaignOut)
    def cancel_campaign(campaign_id: str, who: Sender) -> dict[str, Any]:
        """Stop for good: nothing more is queued and what is still queued is not sent."""
        mk.runs.cancel(who.tenant_id, campaign_id, who.credential_id)
        return mk.campaigns.get(who.tenant_id, campaign_id)

    @r.get("/campaigns/{campaign_id}/checks", response_model=CampaignChecks)
    def campaign_checks(campaign_id: str, who: Reader) -> dict[str, Any]:
        """The pre-send compliance checks the campaign fails now (empty: it may start):
        DKIM-aligned sender domain, postal address and unsubscribe link in marketing and
        fundraising bodies, no engagement tracking on the phi stream."""
        return {"failed": mk.campaigns.checks(who.tenant_id, campaign_id)}

    @r.get("/campaigns/{campaign_id}/stats", response_model=CampaignStats)
    def campaign_stats(campaign_id: str, who: Reader) -> dict[str, Any]:
        """Per variant: sends by state, deliveries, bounces, complaints, unsubscribes, and
        human opens and clicks (machine events excluded), each once per message."""
        return mk.campaigns.stats(who.tenant_id, campaign_id)

    @r.get("/campaigns/{campaign_id}/stats.csv", response_class=StreamingResponse, responses=VARIANT_CSV)
    def campaign_stats_csv(campaign_id: str, who: Reader) -> StreamingResponse:
        """The same per-variant figures as CSV, one row per variant."""
        lines = mk.campaigns.stats_csv(who.tenant_id, campaign_id)  # 404 before streaming
        return StreamingResponse(
            iter(lines),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="campaign-stats.csv"'},
        )

    @r.get("/campaigns/{campaign_id}/audience", response_model=AudiencePage)
    def campaign_audience(
        campaign_id: str,
        who: Reader,
        limit: PageSize = 100,
        cursor: Cursor = "",
    ) -> dict[str, Any]:
        """The audience snapshot: each send's contact, variant, matched conditions and state."""
        return mk.campaigns.audience(who.tenant_id, campaign_id, limit, cursor)

    @r.post("/journeys", status_code=201, response_model=JourneySaved)
    def save_journey(body: JourneyIn, who: Sender) -> dict[str, Any]:
        """A new immutable version (the previous one stops enrolling; its enrollments go on)."""
        return mk.journeys.save(
            who.tenant_id,
            body.name,
            body.definition,
            actor=who.credential_id,
            allowed=classes_for_scopes(who.scopes),
        )

    @r.post("/journeys/{journey_id}/activate", response_model=JourneySaved)
    def activate_journey(journey_id: str, who: Sender) -> dict[str, Any]:
        """Enrol on this version again (the name's other versions stop enrolling)."""
        return mk.journeys.set_active(who.tenant_id, journey_id, True, actor=who.credential_id)

    @r.post("/journeys/{journey_id}/deactivate", response_model=JourneySaved)
    def deactivate_journey(journey_id: str, who: Sender) -> dict[str, Any]:
        """Stop enrolling on this version; enrollments already made go on."""
        return mk.journeys.set_active(who.tenant_id, journey_id, False, actor=who.credential_id)

    @r.get("/journeys", response_model=JourneyList)
    def list_journeys(who: Reader, limit: PageSize = 100, cursor: Cursor = "") -> dict[str, Any]:
        """A page of journey versions, by name then version, with their enrollment counts."""
        return mk.journeys.page(who.tenant_id, limit=limit, cursor=cursor)

    @r.post("/journeys/{journey_id}/pause", response_model=JourneyOut)
    def pause_journey(journey_id: str, who: Sender) -> dict[str, Any]:
        """Hold this journey version's sends: enrollments wait at their send steps and its
        queued messages are deferred (409 if paused already)."""
        return mk.journeys.pause(who.tenant_id, journey_id, who.credential_id)

    @r.post("/journeys/{journey_id}/resume", response_model=JourneyOut)
    def resume_journey(journey_id: str, who: Sender) -> dict[str, Any]:
        """Let a paused journey send again once every send step passes the pre-send checks
        (422 naming each failure; 409 unless paused)."""
        return mk.journeys.resume(who.tenant_id, journey_id, who.credential_id)

    @r.post("/journeys/events", response_model=Enrolled)
    def journey_event(body: JourneyEventIn, who: Sender) -> dict[str, Any]:
        """An event for a contact (``appointment_booked``): enrols it in the journeys it
        triggers (once per key) and ends its wait-until steps waiting for this event."""
        got = mk.journeys.event(who.tenant_id, body.event, body.email, body.key, actor=who.credential_id)
        return {"enrolled": got.enrolled, "woken": got.woken}

    @r.get("/journeys/{journey_id}/stats", response_model=JourneyStatsOut)
    def journey_stats(journey_id: str, who: Reader) -> dict[str, Any]:
        """Per node (step) of this journey version: enrollments there now, its sends by
        state, deliveries, bounces, complaints, unsubscribes, conversions, and human opens
        and clicks (machine events excluded), each once per message."""
        return dataclasses.asdict(mk.analytics.journey(who.tenant_id, journey_id))

    @r.get("/journeys/{journey_id}/stats.csv", response_class=StreamingResponse, responses=NODE_CSV)
    def journey_stats_csv(journey_id: str, who: Reader) -> StreamingResponse:
        """The same per-node figures as CSV, one row per step."""
        lines = list(mk.analytics.journey_csv(who.tenant_id, journey_id))  # 404 before streaming
        return StreamingResponse(
            iter(lines),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="journey-{journey_id[:40]}.csv"'},
        )

    @r.post("/conversions", status_code=201, response_model=ConversionOut)
    def record_conversion(body: ConversionIn, who: Sender) -> dict[str, Any]:
        """A conversion (a booking, a donation) for a message a campaign or journey sent:
        counted in that variant's or journey node's figures (404 for any other message)."""
        got = mk.analytics.record_conversion(
            who.tenant_id, body.message_id, body.name, body.value, actor=who.credential_id
        )
        return dataclasses.asdict(got)

    @r.get("/journeys/{journey_id}/enrollments", response_model=EnrollmentList)
    def journey_enrollments(
        journey_id: str, who: Reader, limit: PageSize = 100, cursor: Cursor = ""
    ) -> dict[str, Any]:
        """A page of this journey version's enrollments (a journey may hold millions)."""
        rows = mk.journeys.enrollments(who.tenant_id, journey_id, limit + 1, cursor)
        return {"data": rows[:limit], "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None}

    return r


def _run_csv(mk: Marketing, who: Principal, spool: Any) -> dict[str, Any]:
    try:
        rows = imports.csv_rows(imports.text_lines(spool))
        return mk.importer.run(who.tenant_id, rows, actor=who.credential_id)
    except UnicodeDecodeError as exc:
        raise ValidationFailed([{"field": "file", "message": "is not UTF-8 text"}]) from exc
