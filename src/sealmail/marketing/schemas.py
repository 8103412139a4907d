"""Request and response bodies of ``/v1/marketing/…`` (pydantic): bounded, unknown fields refused.

Size: one API surface's schema, each request body next to what it returns; split, the
OpenAPI names and the shared validators (``without_nul``, ``Strict``) would be read in two.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sealmail.domain.display_text import control_problem
from sealmail.marketing.campaigns import MAX_VARIANTS
from sealmail.marketing.states import CampaignStatus, EnrollmentState, ImportStatus, SendState
from sealmail.web.models import Instant

PurposeName = Literal["treatment", "operations", "marketing", "fundraising"]
ChannelName = Literal["email", "sms"]
AttrValue = str | int | float | bool | None
NextCursor = Annotated[
    str | None, Field(description="Pass as ``cursor`` for the next page; null on the last.")
]


def without_nul(value: Any) -> Any:
    """``value`` unchanged, or ValueError when a string in it (a key too) holds NUL or another
    control character (``control_problem``)."""
    # Iterative: a rule tree or journey definition is nested JSON; its depth is bounded later.
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                raise ValueError("must not contain NUL")
            problem = control_problem(v)
            if problem:
                raise ValueError(problem)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # PostgreSQL text and jsonb cannot hold NUL: a 422 here, not a driver error (a 500) there,
    # and SQLite refuses what PostgreSQL would.
    _no_nul = field_validator("*", mode="before")(without_nul)


class AttributeIn(Strict):
    name: str = Field(max_length=40, description="a-z, 0-9 and _, a letter first.")
    type: Literal["text", "number", "date", "boolean", "choice"]
    phi_class: Literal["none", "demographic", "clinical", "sensitive"] = Field(
        description="sensitive values are encrypted at rest and shown only to admin keys."
    )
    choices: list[str] | None = Field(None, max_length=100)


class ContactIn(Strict):
    email: str = Field(max_length=320)
    phone: str | None = Field(None, max_length=32, description="E.164, e.g. +14155550123.")
    tz: str | None = Field(None, max_length=64, description="IANA zone; default UTC.")
    status: Literal["active", "unsubscribed", "bounced", "archived"] | None = None
    attributes: dict[str, AttrValue] = Field(default_factory=dict, max_length=100)


class ContactBatchIn(Strict):
    contacts: list[ContactIn] = Field(min_length=1, max_length=10_000)


class ListIn(Strict):
    name: str = Field(min_length=1, max_length=100)


class MembersIn(Strict):
    contact_ids: list[str] = Field(min_length=1, max_length=10_000)


class ConsentIn(Strict):
    purpose: PurposeName
    channel: ChannelName = "email"
    action: Literal["grant", "revoke"]
    source: Literal["form", "api", "import", "staff", "mailto", "stop", "preferences"] = "api"
    evidence: str | None = Field(None, max_length=500, description="A reference: form id, ticket, call log.")


class AuthorizationIn(Strict):
    """45 CFR 164.508(c): the core elements, the statements, and remuneration if any."""

    purpose: Literal["marketing", "fundraising"] = "marketing"
    information: str = Field(max_length=1000, description="What PHI may be used or disclosed.")
    disclosed_by: str = Field(max_length=300, description="Who may use or disclose it.")
    disclosed_to: str = Field(max_length=300, description="To whom it may be disclosed.")
    purpose_statement: str = Field(max_length=1000)
    expires_at: Instant
    signed_by: str = Field(max_length=200)
    signed_at: Instant
    statements: list[Literal["right_to_revoke", "conditioning", "redisclosure"]] = Field(max_length=3)
    remuneration: bool = False
    remuneration_statement: str | None = Field(None, max_length=1000)
    document_sha256: str = Field(min_length=64, max_length=64)
    source: Literal["form", "staff", "api"] = "form"

    def as_body(self) -> dict[str, Any]:
        return self.model_dump()


class SegmentIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    rule: dict[str, Any] = Field(
        description="A rule tree: all/any/not over attr, contact, consent, list, engaged."
    )


class RulePreviewIn(Strict):
    rule: dict[str, Any]
    sample: int = Field(20, ge=0, le=100)


class CapIn(Strict):
    max_sends: int = Field(ge=1, le=1000)
    window_hours: int = Field(ge=1, le=24 * 90)


class VariantIn(Strict):
    name: str = Field(min_length=1, max_length=40)
    template: str = Field(min_length=1, max_length=100)
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Default: the newest, pinned at creation."
    )
    weight: int = Field(1, ge=1, le=100)


class CampaignIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    purpose: PurposeName
    remunerated: bool = Field(False, description="A third party pays: needs an authorization stating it.")
    segment: str = Field(
        min_length=1, max_length=100, description="Segment id or name (newest version, pinned)."
    )
    from_: str = Field(alias="from", max_length=400)
    variants: list[VariantIn] = Field(min_length=1, max_length=MAX_VARIANTS)
    send_at: Instant | None = None
    quiet_start: int = Field(21, ge=0, le=23, description="Local hour quiet hours begin (contact's zone).")
    quiet_end: int = Field(8, ge=0, le=23, description="Local hour they end; equal to start: none.")

    def as_body(self) -> dict[str, Any]:
        body = self.model_dump(by_alias=True)
        body["variants"] = [v.model_dump() for v in self.variants]
        return body


class JourneyIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    definition: dict[str, Any] = Field(description="A trigger and up to 20 steps (see the journeys docs).")


class JourneyEventIn(Strict):
    event: str = Field(min_length=1, max_length=60)
    email: str = Field(max_length=320)
    key: str | None = Field(
        None, max_length=40, description="Makes the event distinct (e.g. an appointment id)."
    )


class ConversionIn(Strict):
    message_id: str = Field(min_length=1, max_length=40, description="The campaign or journey message.")
    name: str = Field(min_length=1, max_length=60, description="What converted (booked, donated…).")
    value: float | None = Field(None, ge=0, le=1e12, description="An amount, if any.")


# -- response bodies ---------------------------------------------------------------------------
# They document what the services return; ``extra="allow"`` keeps any key a service adds in
# the body (a response model must never silently drop data), so the JSON stays as built.
class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class AttributeOut(Out):
    name: str
    type: str
    phi_class: str
    choices: list[str] | None


class AttributeList(Out):
    data: list[AttributeOut]


class ContactOut(Out):
    id: str
    email: str
    phone: str | None
    tz: str
    status: str
    attributes: dict[str, Any] = Field(description="Only the PHI classes this key may see.")
    created_at: str
    updated_at: str


class ContactPage(Out):
    data: list[ContactOut]
    next_cursor: str | None


class ImportError_(Out):
    row: int
    field: str
    message: str


class ImportOut(Out):
    id: str
    status: ImportStatus
    rows: int = Field(description="Rows processed so far (all of them once not processing).")
    total: int | None = Field(
        None, description="Rows expected (lines counted on upload) while a background import runs."
    )
    created: int
    updated: int
    failed: int
    error_count: int = Field(0, description="Errors stored in the report (page: /imports/{id}/errors).")
    stalled: bool = Field(
        False,
        description="Processing but no chunk for 5 minutes: its process stopped. What it wrote stays; "
        "upload the file again to finish (contacts are upserted by email).",
    )
    errors: list[ImportError_]


class ImportErrorPage(Out):
    data: list[ImportError_]
    total: int
    offset: int
    limit: int


class ListOut(Out):
    id: str
    name: str
    members: int


class ListList(Out):
    data: list[ListOut]
    next_cursor: NextCursor = None


class MembersRemoved(Out):
    id: str
    name: str
    removed: int


class MembersAdded(Out):
    id: str
    name: str
    added: int
    enrolled: int = Field(description="Journey enrollments the joining started.")


class ConsentState(Out):
    purpose: str
    channel: str
    state: str
    authorization_id: str | None
    expires_at: str | None
    updated_at: str


class ConsentChange(Out):
    id: str
    purpose: str
    channel: str
    action: str
    source: str
    evidence: str | None
    evidence_sha256: str | None
    authorization_id: str | None
    actor: str | None
    at: str


class ConsentOut(Out):
    contact_id: str
    consents: list[ConsentState]


class ConsentWithHistory(ConsentOut):
    history: list[ConsentChange]
    next_cursor: str | None = Field(
        None, description="``cursor`` for older history; null at the first event."
    )


class AuthorizationOut(Out):
    id: str
    contact_id: str
    purpose: str
    information: str
    disclosed_by: str
    disclosed_to: str
    purpose_statement: str
    signed_by: str
    statements: list[str]
    expires_at: str
    signed_at: str
    remuneration: bool
    remuneration_statement: str | None
    document_sha256: str


class StoredAuthorization(AuthorizationOut):
    revoked_at: str | None
    created_by: str
    created_at: str
    state: Literal["active", "expired", "revoked"] = Field(
        description="Now: revoked (wins over expiry), expired (``expires_at`` passed) or active."
    )


class AuthorizationList(Out):
    data: list[StoredAuthorization] = Field(description="Newest first.")


class SegmentOut(Out):
    id: str
    name: str
    version: int
    phi_classes: list[str]
    rule: dict[str, Any]


class SegmentList(Out):
    data: list[SegmentOut]
    next_cursor: NextCursor = None


class SampleContact(Out):
    id: str
    email: str
    matched: list[str] = Field(description="The rule's leaves this contact matched (labels, never values).")


class SegmentPreview(Out):
    count: int
    phi_classes: list[str]
    sample: list[SampleContact]


class CapOut(Out):
    purpose: str
    max_sends: int
    window_hours: int


class CapSetting(Out):
    purpose: str
    max_sends: int | None = Field(description="None: no cap for this purpose.")
    window_hours: int | None


class CapList(Out):
    data: list[CapSetting]


class SendTally(Out):
    state: SendState
    reason: str | None
    count: int


class CampaignOut(Out):
    id: str
    name: str
    purpose: str
    remunerated: bool
    segment_id: str
    variants: list[dict[str, Any]]
    send_at: str | None
    quiet_hours: list[int] = Field(description="[start, end] local hours.")
    status: CampaignStatus = Field(description="starting: the audience is being expanded.")
    audience: int | None = Field(description="Contacts expanded so far (all of them once sending).")
    queued: int | None
    failed: int = Field(0, description="Contacts whose message could not be rendered or accepted.")
    sends: list[SendTally]


class CheckFailure(Out):
    check: str
    message: str


class CampaignChecks(Out):
    failed: list[CheckFailure]


class CampaignStats(Out):
    campaign_id: str
    variants: dict[str, dict[str, int]] = Field(description="Per variant: counts by state and event.")


class AudienceEntry(Out):
    message_id: str
    contact_id: str
    variant: str | None
    matched: Any = Field(description="Why the contact was in the audience (the rule's leaf labels).")
    state: SendState
    reason: str | None


class CampaignSummary(Out):
    id: str
    name: str
    purpose: str
    remunerated: bool
    status: CampaignStatus
    segment_id: str
    created_at: str
    audience: int | None
    sent: int
    skipped: dict[str, int] = Field(description="Sends not made, by reason.")


class CampaignPage(Out):
    data: list[CampaignSummary]
    next_cursor: str | None = Field(description="Pass as ``cursor`` for the next (older) page.")


class AudiencePage(Out):
    data: list[AudienceEntry]
    next_cursor: str | None


class JourneySaved(Out):
    id: str
    name: str
    version: int
    active: bool


class JourneyOut(JourneySaved):
    enrolled: int
    definition: dict[str, Any]
    paused: str | None = Field(
        None, description="Why its sends are held (user, complaint_rate, compliance); null if not paused."
    )


class JourneyList(Out):
    data: list[JourneyOut]
    next_cursor: NextCursor = None


class Enrolled(Out):
    enrolled: int
    woken: int = Field(0, description="Wait-until steps of this contact that the event ended.")


class EnrollmentOut(Out):
    id: str
    contact_id: str
    step: int
    state: EnrollmentState
    due_at: str
    steps_run: int
    last_reason: str | None


class EnrollmentList(Out):
    data: list[EnrollmentOut]
    next_cursor: str | None = None


class NodeStatsOut(Out):
    step: int
    kind: str
    detail: str = Field(description="The template sent, the event awaited, the list… (no contact data).")
    at_node: int = Field(description="Enrollments at this step now (waiting or due).")
    queued: int
    sent: int
    skipped: int
    delivered: int
    bounced: int
    complained: int
    unsubscribed: int
    opened: int = Field(description="Distinct messages opened by a human (machine opens excluded).")
    clicked: int = Field(description="Distinct messages clicked by a human (scanners excluded).")
    converted: int


class JourneyStatsOut(Out):
    journey_id: str
    name: str
    version: int
    nodes: list[NodeStatsOut]


class ConversionOut(Out):
    message_id: str
    name: str
    campaign_id: str | None
    journey_id: str | None
    step: int | None
