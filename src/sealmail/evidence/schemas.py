"""Response bodies of the evidence routes (the signed document as the API returns it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from sealmail.evidence.registers import PlainState, PlainStepKind, PreferenceState, PreferenceStepKind
from sealmail.web.models import Out


class SignatureOut(Out):
    algorithm: str = Field(description="Ed25519.")
    key_fingerprint: str = Field(description="SHA-256 (hex) of the raw public key: pin it.")
    public_key: str = Field(description="The raw 32-byte public key, base64.")
    value: str = Field(description="Signature over the canonical JSON of {format, manifest}, base64.")


class ProofBodyOut(Out):
    tenant_id: str
    message_id: str
    message_id_header: str
    recipient_id: str
    recipient: str
    accepted_at: str
    delivered_at: str
    issued_at: str
    sha256: dict[str, str | None] = Field(description="accepted (stored content) and sent (DATA bytes).")
    method: dict[str, Any] = Field(description="SecureLine method, its reason and the recipient key used.")
    transport: dict[str, Any] = Field(
        description="MX, TLS version and cipher, server certificate SHA-256, and verified_by "
        "(none | pkix | mta-sts | dane)."
    )
    remote: dict[str, Any] = Field(description="The receiving server's reply (code, enhanced code, text).")
    audit: dict[str, int | None] = Field(description="Audit sequence numbers: acceptance and this issuance.")


class ProofOut(Out):
    format: str = Field(description="sealmail-proof-of-delivery/1")
    body: ProofBodyOut
    manifest: dict[str, str] = Field(description="SHA-256 of each body field (dotted path), signed.")
    signature: SignatureOut


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_days: int = Field(ge=1, le=36500, description="Sealed content is crypto-shredded after this.")
    metadata_days: int = Field(ge=1, le=36500, description="At least 2192 (six years): delivery records.")
    audit_days: int = Field(ge=1, le=36500, description="At least 2192 (six years): the audit log.")


class RetentionOut(Out):
    content_days: int
    metadata_days: int
    audit_days: int


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["message", "recipient", "tenant"]
    target: str = Field(
        default="", max_length=320, description="Message id or recipient address; empty for the tenant."
    )
    reason: str = Field(min_length=1, max_length=500)


class HoldOut(Out):
    id: str
    scope: str
    target: str
    reason: str
    created_at: str
    created_by: str
    released_at: str | None
    released_by: str | None
    active: bool


class PurgeOut(Out):
    tenant_id: str
    shredded: int = Field(description="Messages whose data key was destroyed.")
    pseudonymised: int = Field(description="Messages whose recipient addresses were pseudonymised.")
    held: int = Field(description="Messages past their period kept by a legal hold.")
    forms_shredded: int = Field(0, description="Form submissions whose sealed answers were shredded.")
    forms_held: int = Field(0, description="Form submissions past the content period kept by a legal hold.")


class PlainRecordIn(BaseModel):
    """Staff record a patient's request for unencrypted mail, the warning given and the
    confirmation, with the evidence (where the signed form or call note is)."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="The address the patient confirmed, verified by staff.")
    evidence: str = Field(min_length=1, max_length=1000, description="E.g. 'signed form scanned to chart'.")


class PlainRevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=1000)


class PlainStepOut(Out):
    kind: PlainStepKind
    at: str
    actor: str
    via: str = Field(description="portal | staff")
    evidence: str | None
    warning_sha256: str | None = Field(description="SHA-256 of the warning text the patient was shown.")


class PlainRequestOut(Out):
    id: str
    address: str
    state: PlainState
    requested_at: str
    confirmed_at: str | None
    revoked_at: str | None
    steps: list[PlainStepOut]


class PreferenceIn(BaseModel):
    """Staff record a patient's confidential-communication preference (164.522(b)) with the
    evidence of the request (where the form or call note is)."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="The patient's address, verified by staff.")
    kind: Literal["portal_only", "redirect", "no_sms"] = Field(
        description="portal_only: only through the portal; redirect: no e-mail to this address, use "
        "`alternative`; no_sms: no text messages."
    )
    alternative: str | None = Field(
        default=None, max_length=320, description="For a redirect: the address to use instead."
    )
    evidence: str = Field(min_length=1, max_length=1000, description="E.g. 'call note 2026-12-01, chart'.")


class PreferenceStepOut(Out):
    kind: PreferenceStepKind
    at: str
    actor: str
    via: str = Field(description="portal | staff")
    evidence: str | None


class PreferenceOut(Out):
    id: str
    address: str
    kind: str = Field(description="portal_only | redirect | no_sms")
    alternative: str | None
    state: PreferenceState
    recorded_at: str
    revoked_at: str | None
    meaning: str
    steps: list[PreferenceStepOut]


class PlainWarningOut(Out):
    text: str
    sha256: str


class AnchorRecipientsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor_recipients: list[str] = Field(
        max_length=5, description="Compliance officer address(es) each scheduled audit anchor is mailed to."
    )


class AnchorRecipientsOut(Out):
    anchor_recipients: list[str]


class SignOffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000, description="What was reviewed and what was found.")


class SignOffOut(Out):
    month: str
    signed_at: str
    signed_by: str
    note: str
    item_count: int
    items_sha256: str = Field(description="SHA-256 of the queue's items as they stood when signed.")


class ReviewItemOut(Out):
    audit_seq: int
    at: str
    category: str
    actor: str
    action: str
    target: str | None


class ReviewQueueOut(Out):
    month: str
    items: list[ReviewItemOut]
    counts: dict[str, int]
    items_sha256: str
    sign_off: SignOffOut | None


class ReviewSettingsIn(BaseModel):
    """Ranges are checked by the same function as the console's form (400 with what is wrong)."""

    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(max_length=64, description="IANA time zone, e.g. America/New_York.")
    start: StrictInt = Field(description="First working hour, local time (0-23).")
    end: StrictInt = Field(description="The hour the working day ends, exclusive (1-24).")
    weekdays: list[StrictInt] = Field(max_length=7, description="Working days, Monday = 0 to Sunday = 6.")
    large_reads: StrictInt | None = Field(
        None,
        description="Content reads by one person in one local day that queue a large read "
        "(1-10000); omitted: unchanged.",
    )


class ReviewSettingsOut(Out):
    time_zone: str
    start: int
    end: int
    weekdays: list[int]
    large_reads: int
    described: str = Field(description="The working hours as the review queue shows them.")
