"""Evidence over HTTP: a recipient's signed proof of delivery, the delivery report.

Reading either needs the ``read`` scope; both are audited by the service.  Another
tenant's message is a 404 like any missing one.
"""

# No ``from __future__ import annotations``: FastAPI reads the ``Annotated`` aliases of
# the route functions at definition time.
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from sealmail.errors import InvalidRequest
from sealmail.evidence.catalogue import REPORTS
from sealmail.evidence.pack import Packer, parse_period
from sealmail.evidence.plain import WARNING, WARNING_SHA256
from sealmail.evidence.reports import Period, ReportFilter
from sealmail.evidence.retention import RetentionPolicy
from sealmail.evidence.schemas import (
    AnchorRecipientsIn,
    AnchorRecipientsOut,
    HoldIn,
    HoldOut,
    PlainRecordIn,
    PlainRequestOut,
    PlainRevokeIn,
    PlainWarningOut,
    PreferenceIn,
    PreferenceOut,
    ProofOut,
    PurgeOut,
    RetentionIn,
    RetentionOut,
    ReviewQueueOut,
    ReviewSettingsIn,
    ReviewSettingsOut,
    SignOffIn,
    SignOffOut,
)
from sealmail.evidence.service import Evidence
from sealmail.evidence.working_hours import ReviewSettings, review_settings
from sealmail.tenancy.service import Principal
from sealmail.web.models import Instant

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "RFC 4180 CSV: status, method, secured_by, tls_version, verified_by, recipients.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


REPORT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report as RFC 4180 CSV or a PDF.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def router(evidence: Evidence, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["evidence"])
    Reader = Annotated[Principal, need("read")]
    Id = Annotated[str, Path(max_length=64)]

    @r.get("/messages/{message_id}/recipients/{recipient_id}/proof", response_model=ProofOut)
    def proof(message_id: Id, recipient_id: Id, who: Reader) -> dict[str, Any]:
        """The signed proof of delivery of one recipient (409 until it is delivered).

        Body, a manifest of the SHA-256 of each body field, and an Ed25519 signature by the
        tenant's evidence key over the manifest: check it offline with ``sealmail verify FILE``.
        """
        return evidence.proofs.issue(who.tenant_id, message_id, recipient_id, who.credential_id)

    @r.get("/reports/delivery.csv", response_class=Response, responses=CSV_RESPONSE)
    def delivery_report(
        who: Reader,
        since: Annotated[Instant, Query(description="Start (inclusive), ISO 8601 with offset.")],
        until: Annotated[Instant, Query(description="End (exclusive), ISO 8601 with offset.")],
    ) -> Response:
        """Recipients of messages accepted in the period, by outcome and how they were secured."""
        if until <= since:
            raise InvalidRequest("until must be after since")
        body = evidence.delivery_report(who.tenant_id, Period(since, until), who.credential_id)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="delivery-report.csv"'},
        )

    records_routes(r, evidence, need)
    plain_routes(r, evidence, need)
    preference_routes(r, evidence, need)
    pack_routes(r, evidence, need)
    review_routes(r, evidence, need)
    return r


def review_routes(r: APIRouter, evidence: Evidence, need: Any) -> None:
    """The monthly activity review (164.308(a)(1)(ii)(D)): read the queue, sign it off."""
    Reader = Annotated[Principal, need("read")]
    Admin = Annotated[Principal, need("admin")]
    Month = Annotated[str, Path(max_length=7, description="YYYY-MM")]
    review = evidence.activity_review

    def settings_out(s: ReviewSettings) -> ReviewSettingsOut:
        hours = s.hours
        return ReviewSettingsOut(
            time_zone=hours.time_zone,
            start=hours.start,
            end=hours.end,
            weekdays=list(hours.weekdays),
            large_reads=s.large_reads,
            described=hours.describe(),
        )

    # Before the {month} routes, which would otherwise take "settings" for a month.
    @r.get("/evidence/activity-review/settings", response_model=ReviewSettingsOut)
    def review_settings_get(who: Reader) -> ReviewSettingsOut:
        """The working hours and large-read threshold the tenant's review applies."""
        return settings_out(review.review_settings(who.tenant_id))

    @r.put("/evidence/activity-review/settings", response_model=ReviewSettingsOut)
    def review_settings_put(body: ReviewSettingsIn, who: Admin) -> ReviewSettingsOut:
        """Set them (the console's checks; audited as ``working_hours:set`` with before and after)."""
        current = review.review_settings(who.tenant_id)
        reads = current.large_reads if body.large_reads is None else body.large_reads
        wanted = review_settings(body.time_zone, body.start, body.end, body.weekdays, reads)
        return settings_out(review.set_review_settings(who.tenant_id, wanted, who.credential_id))

    @r.get("/evidence/activity-review/{month}", response_model=ReviewQueueOut)
    def review_queue(month: Month, who: Reader) -> ReviewQueueOut:
        """The month's queue from the audit log, and its sign-off if signed."""
        return ReviewQueueOut.of(evidence.activity_review.queue(who.tenant_id, month))

    @r.post("/evidence/activity-review/{month}/sign-off", response_model=SignOffOut, status_code=201)
    def review_sign_off(month: Month, body: SignOffIn, who: Admin) -> SignOffOut:
        """Sign the month off with a note (once; audited; in the evidence pack)."""
        return SignOffOut.of(
            evidence.activity_review.sign_off(who.tenant_id, month, body.note, who.credential_id)
        )


def pack_routes(r: APIRouter, evidence: Evidence, need: Any) -> None:
    Admin = Annotated[Principal, need("admin")]

    @r.get(
        "/evidence/pack",
        response_class=Response,
        responses={
            200: {
                "description": "The signed zip.",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    def pack(
        who: Admin, period: Annotated[str, Query(max_length=10, description="2026-Q4, 2026-11 or 2026.")]
    ) -> Response:
        """The signed evidence pack of a period: check it with ``sealmail verify PACK.zip --key …``."""
        data = Packer(evidence).build(who.tenant_id, parse_period(period), who.credential_id)
        name = f"sealmail-evidence-{period}.zip"
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def plain_routes(r: APIRouter, evidence: Evidence, need: Any) -> None:
    """The unencrypted-by-request register (164.524(c)(2)); staff recording needs ``admin``."""
    Reader = Annotated[Principal, need("read")]
    Admin = Annotated[Principal, need("admin")]
    Id = Annotated[str, Path(max_length=64)]

    @r.get("/evidence/plain-requests/warning", response_model=PlainWarningOut)
    def plain_warning(who: Reader) -> dict[str, Any]:
        """The warning a patient must be given before confirming (read it to them as is)."""
        return {"text": WARNING, "sha256": WARNING_SHA256}

    @r.post("/evidence/plain-requests", response_model=PlainRequestOut, status_code=201)
    def plain_record(body: PlainRecordIn, who: Admin) -> PlainRequestOut:
        """Record a patient's confirmed request; from now on SecureLine may send that address
        plain mail from this tenant (409 while another request for it stands)."""
        return PlainRequestOut.of(
            evidence.plain.record(who.tenant_id, body.address, body.evidence, who.credential_id)
        )

    @r.get("/evidence/plain-requests", response_model=list[PlainRequestOut])
    def plain_list(
        who: Reader, address: Annotated[str | None, Query(max_length=320)] = None
    ) -> list[PlainRequestOut]:
        return [PlainRequestOut.of(q) for q in evidence.plain.requests(who.tenant_id, address)]

    @r.get("/evidence/plain-requests/{request_id}", response_model=PlainRequestOut)
    def plain_get(request_id: Id, who: Reader) -> PlainRequestOut:
        return PlainRequestOut.of(evidence.plain.get(who.tenant_id, request_id))

    @r.post("/evidence/plain-requests/{request_id}/revoke", response_model=PlainRequestOut)
    def plain_revoke(request_id: Id, who: Admin, body: PlainRevokeIn | None = None) -> PlainRequestOut:
        """Revoke: SecureLine stops sending plain mail to the address at once."""
        reason = body.reason if body else ""
        return PlainRequestOut.of(
            evidence.plain.revoke(who.tenant_id, request_id, who.credential_id, "staff", reason)
        )


def preference_routes(r: APIRouter, evidence: Evidence, need: Any) -> None:
    """The confidential-communication register (164.522(b)); recording needs ``admin``."""
    Reader = Annotated[Principal, need("read")]
    Admin = Annotated[Principal, need("admin")]
    Id = Annotated[str, Path(max_length=64)]

    @r.post("/evidence/comms-preferences", response_model=PreferenceOut, status_code=201)
    def preference_record(body: PreferenceIn, who: Admin) -> PreferenceOut:
        """Record a patient's preference; SecureLine obeys it for this tenant's mail to that
        address from the next delivery on (409 while one of the same kind stands)."""
        made = evidence.preferences.record(
            who.tenant_id,
            body.address,
            body.kind,
            who.credential_id,
            "staff",
            body.evidence,
            body.alternative,
        )
        return PreferenceOut.of(made)

    @r.get("/evidence/comms-preferences", response_model=list[PreferenceOut])
    def preference_list(
        who: Reader,
        address: Annotated[str | None, Query(max_length=320)] = None,
        active: Annotated[bool, Query(description="Only the standing ones.")] = False,
    ) -> list[PreferenceOut]:
        return [PreferenceOut.of(p) for p in evidence.preferences.preferences(who.tenant_id, address, active)]

    @r.get("/evidence/comms-preferences/{preference_id}", response_model=PreferenceOut)
    def preference_get(preference_id: Id, who: Reader) -> PreferenceOut:
        return PreferenceOut.of(evidence.preferences.get(who.tenant_id, preference_id))

    @r.post("/evidence/comms-preferences/{preference_id}/revoke", response_model=PreferenceOut)
    def preference_revoke(preference_id: Id, who: Admin, body: PlainRevokeIn | None = None) -> PreferenceOut:
        """Revoke: SecureLine stops applying the preference at once."""
        reason = body.reason if body else ""
        revoked = evidence.preferences.revoke(
            who.tenant_id, preference_id, who.credential_id, "staff", reason
        )
        return PreferenceOut.of(revoked)


def records_routes(r: APIRouter, evidence: Evidence, need: Any) -> None:
    """Retention, legal holds and reports under ``/v1/evidence``: reading needs ``read``,
    changing ``admin``; every change and export is audited by the service."""
    Reader = Annotated[Principal, need("read")]
    Admin = Annotated[Principal, need("admin")]

    @r.get("/evidence/retention", response_model=RetentionOut)
    def retention_get(who: Reader) -> dict[str, Any]:
        """The tenant's retention periods, in days (six years each by default)."""
        return asdict(evidence.retention.policy(who.tenant_id))

    @r.put("/evidence/retention", response_model=RetentionOut)
    def retention_put(body: RetentionIn, who: Admin) -> dict[str, Any]:
        """Set the periods; metadata or audit below 2192 days (six years) is a 422."""
        wanted = RetentionPolicy(body.content_days, body.metadata_days, body.audit_days)
        return asdict(evidence.retention.set_policy(who.tenant_id, wanted, who.credential_id))

    @r.post("/evidence/retention/purge", response_model=PurgeOut)
    def retention_purge(who: Admin) -> dict[str, Any]:
        """Purge now what is past its period (the worker also does, on a schedule)."""
        return asdict(evidence.retention.purge(who.tenant_id, who.credential_id))

    @r.get("/evidence/anchor-recipients", response_model=AnchorRecipientsOut)
    def anchor_recipients_get(who: Reader) -> dict[str, Any]:
        return {"anchor_recipients": evidence.anchor_recipients.get(who.tenant_id)}

    @r.put("/evidence/anchor-recipients", response_model=AnchorRecipientsOut)
    def anchor_recipients_put(body: AnchorRecipientsIn, who: Admin) -> dict[str, Any]:
        """Name who receives each scheduled audit anchor, signed, by mail (empty: nobody)."""
        wanted = evidence.anchor_recipients.set(who.tenant_id, body.anchor_recipients, who.credential_id)
        return {"anchor_recipients": wanted}

    @r.get("/evidence/holds", response_model=list[HoldOut])
    def holds(who: Reader, active: bool = False) -> list[HoldOut]:
        return [HoldOut.of(h) for h in evidence.retention.holds(who.tenant_id, active_only=active)]

    @r.post("/evidence/holds", response_model=HoldOut, status_code=201)
    def hold_place(body: HoldIn, who: Admin) -> HoldOut:
        """Place a legal hold on a message, a recipient address or the whole tenant."""
        return HoldOut.of(
            evidence.retention.place_hold(
                who.tenant_id, body.scope, body.target, body.reason, who.credential_id
            )
        )

    @r.post("/evidence/holds/{hold_id}/release", response_model=HoldOut)
    def hold_release(hold_id: Annotated[str, Path(max_length=64)], who: Admin) -> HoldOut:
        return HoldOut.of(evidence.retention.release_hold(who.tenant_id, hold_id, who.credential_id))

    @r.get("/evidence/reports/{name}", response_class=Response, responses=REPORT_RESPONSE)
    def report(
        name: Annotated[str, Path(max_length=20, description=", ".join(REPORTS))],
        who: Reader,
        since: Annotated[
            Instant | None, Query(description="Start (inclusive), ISO 8601 with offset.")
        ] = None,
        until: Annotated[Instant | None, Query(description="End (exclusive), ISO 8601 with offset.")] = None,
        format: Annotated[Literal["csv", "pdf"], Query()] = "csv",
        sender: Annotated[str | None, Query(max_length=320)] = None,
        recipient_domain: Annotated[str | None, Query(max_length=255)] = None,
        stream: Annotated[str | None, Query(max_length=20)] = None,
        campaign: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """One report for a period, CSV or PDF (``retention`` needs no period)."""
        period = _period(since, until)
        f = ReportFilter(sender, recipient_domain, stream, campaign)
        data = evidence.report(name, who.tenant_id, period, who.credential_id, format, f)
        media = "application/pdf" if format == "pdf" else "text/csv; charset=utf-8"
        return Response(
            data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'}
        )


def _period(since: datetime | None, until: datetime | None) -> Period | None:
    if since is None and until is None:
        return None
    if since is None or until is None:
        raise InvalidRequest("give both since and until, or neither")
    if until <= since:
        raise InvalidRequest("until must be after since")
    return Period(since, until)
