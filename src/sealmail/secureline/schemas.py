"""Response bodies of the key directory and tenant identity routes."""

from __future__ import annotations

from pydantic import Field

from sealmail.web.models import Out


class RecipientKeyOut(Out):
    id: str
    kind: str
    address: str
    fingerprint: str
    source: str
    trusted: bool
    expires_at: str | None
    created_at: str | None
    updated_at: str | None


class RecipientKeyListOut(Out):
    data: list[RecipientKeyOut]


class RecipientKeyWithDataOut(RecipientKeyOut):
    key: str = Field(description="Armored/PEM text, or base64 of binary data.")


class ArchiveKeyOut(Out):
    fingerprint: str
    certificate: str


class SmimeIdentityOut(Out):
    subject: str
    issuer: str
    fingerprint_sha256: str
    emails: list[str]
    not_after: str
