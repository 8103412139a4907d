"""SecureLine management: the key directory, DKIM records, DLP quarantine, policy settings."""

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sealmail.crypto import dkim, smime
from sealmail.dlp.screening import Screener, policy_from_settings
from sealmail.domain.addresses import header_text_problem
from sealmail.domain.portal_factors import WeakNoticePolicy
from sealmail.domain.secureline import Method
from sealmail.errors import NotFound, ValidationFailed
from sealmail.messages.schemas import QuarantinePageOut, ReleasedOut, message_page
from sealmail.messages.service import Messages
from sealmail.net.dns import Resolver
from sealmail.portal.access import audit_weak_notice_change
from sealmail.secureline.identities import Identities
from sealmail.secureline.keydir import KeyDirectory, RecipientKey
from sealmail.secureline.posture import OPTIONAL
from sealmail.secureline.schemas import (
    ArchiveKeyOut,
    RecipientKeyListOut,
    RecipientKeyWithDataOut,
    SmimeIdentityOut,
)
from sealmail.secureline.sender_domains import SenderDomains
from sealmail.tenancy.decisions import REASON_DOC, Decisions, require_reason
from sealmail.tenancy.schemas import DkimRecordsOut, DomainCheckOut, SettingsOut
from sealmail.tenancy.service import Principal, Tenancy


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="ASCII-armored OpenPGP certificate, PEM X.509, or base64 DER/binary.")
    trusted: bool = Field(False, description="S/MIME: the organisation vouches for this certificate.")


class SecureLineSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: list[Method] | None = None
    forbidden: list[Method] | None = None
    force_portal: bool | None = None
    require_message_encryption_on_phi: bool | None = None
    portal_subject: str | None = Field(None, max_length=200)
    sign_pgp: bool | None = Field(None, description="Sign PGP/MIME with the tenant's OpenPGP key.")
    sign_smime: bool | None = Field(None, description="Sign S/MIME with the tenant's S/MIME identity.")
    portal_require_passphrase: bool | None = Field(
        None, description="Portal messages open only with a passphrase the sender sets (no emailed codes)."
    )
    portal_expiry_days: int | None = Field(None, ge=1, le=3650)
    portal_weak_notice: WeakNoticePolicy | None = Field(
        None,
        description="Sign-in codes for portal messages travel only at the message's required TLS "
        "level (`require_strong_factor`, the default); `allow_email_code` lets them go with "
        "opportunistic TLS even when the notice itself went out below the level (audited).",
    )

    @field_validator("portal_subject")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # The Subject of every portal notice: a line break would make each one unbuildable.
        problem = header_text_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("order", "forbidden")
    @classmethod
    def _no_plain(cls, value: list[Method] | None) -> list[Method] | None:
        if value and Method.PLAIN in value:
            raise ValueError(
                "plain is not a policy method: it is used only for a patient's confirmed request "
                "(POST /v1/evidence/plain-requests)"
            )
        return value


class SmimeIdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate: str = Field(description="PEM certificate, leaf first, then its chain.")
    private_key: str = Field(description="PEM private key (RSA or EC), unencrypted.")


class PolicySettingsIn(BaseModel):
    """Partial update of the tenant's SecureLine policy, DLP rules and discovery opt-in."""

    model_config = ConfigDict(extra="forbid")

    secureline: SecureLineSettingsIn | None = None
    dlp: dict[str, Any] | None = Field(None, description="mrn_patterns, keywords, actions, default_action…")
    key_discovery: bool | None = None
    harvest_keys: bool | None = Field(
        None, description="Keep Autocrypt / S/MIME signer certificates from mail the gateway receives."
    )
    reason: str | None = Field(None, max_length=2000, description=REASON_DOC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _key(row: RecipientKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "address": row.address,
        "fingerprint": row.fingerprint,
        "source": row.source,
        "trusted": row.trusted,
        "expires_at": _iso(row.expires_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _decode_key(text: str) -> bytes:
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return stripped.encode()
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed([{"field": "key", "message": "neither armored/PEM text nor base64"}]) from exc


class SecureLineServices(Protocol):
    """What the SecureLine routes are handed by the composition root."""

    @property
    def keydir(self) -> KeyDirectory: ...
    @property
    def identities(self) -> Identities: ...
    @property
    def sender_domains(self) -> SenderDomains: ...
    @property
    def messages(self) -> Messages: ...
    @property
    def tenancy(self) -> Tenancy: ...
    @property
    def screener(self) -> Screener: ...


def router(services: SecureLineServices, need: Any, resolver: Resolver) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["secureline"])
    Admin = Annotated[Principal, need("admin")]
    Reader = Annotated[Principal, need("read")]
    keydir = services.keydir

    @r.post("/keys", status_code=201, response_model=RecipientKeyListOut)
    def upload_key(body: KeyIn, who: Admin) -> dict[str, Any]:
        rows = keydir.upload(who.tenant_id, _decode_key(body.key), who.credential_id, trusted=body.trusted)
        return {"data": [_key(r) for r in rows]}

    @r.get("/keys", response_model=RecipientKeyListOut)
    def list_keys(who: Reader, address: str | None = None, kind: str | None = None) -> dict[str, Any]:
        return {"data": [_key(r) for r in keydir.list(who.tenant_id, address=address, kind=kind)]}

    @r.get("/keys/{key_id}", response_model=RecipientKeyWithDataOut)
    def get_key(key_id: str, who: Reader) -> dict[str, Any]:
        stored = keydir.get(who.tenant_id, key_id)
        data = stored.data
        text = data.decode() if data.lstrip().startswith(b"-----") else base64.b64encode(data).decode()
        return {**_key(stored.key), "key": text}

    @r.delete("/keys/{key_id}", status_code=204)
    def delete_key(key_id: str, who: Admin) -> None:
        keydir.delete(who.tenant_id, key_id, who.credential_id)

    @r.post("/domains/{name}/dkim", status_code=201, response_model=DkimRecordsOut)
    async def create_dkim(name: str, who: Admin) -> dict[str, Any]:
        records = await run_in_threadpool(
            services.sender_domains.rotate_keys, who.tenant_id, name, who.credential_id
        )
        return {"records": [_record(rec) for rec in records]}

    @r.get("/domains/{name}/records", response_model=DkimRecordsOut)
    def domain_records(name: str, who: Admin) -> dict[str, Any]:
        return {"records": [_record(rec) for rec in services.sender_domains.records(who.tenant_id, name)]}

    @r.post("/domains/{name}/check", response_model=DomainCheckOut)
    async def check_domain(name: str, who: Admin) -> dict[str, Any]:
        results = await services.sender_domains.check(who.tenant_id, name, resolver, run_in_threadpool)
        return {
            # MTA-STS and TLS-RPT are recommendations (posture.OPTIONAL): reported, not required.
            "ok": all(c.ok for c in results if c.purpose not in OPTIONAL),
            "checks": [
                {"name": c.name, "purpose": str(c.purpose), "ok": c.ok, "detail": c.detail,
                 "required": c.purpose not in OPTIONAL}
                for c in results
            ],
        }  # fmt: skip

    @r.put("/tenant/smime-identity", response_model=SmimeIdentityOut)
    def set_smime_identity(body: SmimeIdentityIn, who: Admin) -> SmimeIdentityOut:
        """The certificate and key S/MIME signing uses; the key is sealed at rest, never returned."""
        try:
            return SmimeIdentityOut.of(
                services.identities.set_smime_identity(
                    who.tenant_id, body.certificate.encode(), body.private_key.encode(), who.credential_id
                )
            )
        except smime.CertificateError as exc:
            raise ValidationFailed([{"field": "certificate", "message": str(exc)}]) from exc

    @r.get("/tenant/smime-identity", response_model=SmimeIdentityOut)
    def get_smime_identity(who: Reader) -> SmimeIdentityOut:
        info = services.identities.smime_identity_info(who.tenant_id)
        if info is None:
            raise NotFound("no S/MIME identity yet; PUT /v1/tenant/smime-identity")
        return SmimeIdentityOut.of(info)

    @r.get("/tenant/archive-key", response_model=ArchiveKeyOut)
    def archive_key(who: Reader) -> dict[str, Any]:
        """The tenant's OpenPGP archive (and signing) certificate; every PGP message is also
        encrypted to it so the organisation can retain what it sent."""
        public = services.identities.archive_public(who.tenant_id)
        return {
            "fingerprint": services.identities.archive_cert(who.tenant_id).info.fingerprint,
            "certificate": public.decode(),
        }

    @r.get("/quarantine", response_model=QuarantinePageOut)
    def quarantine(who: Reader, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        return message_page(services.messages.quarantined(who, limit=min(max(limit, 1), 500), cursor=cursor))

    @r.post("/messages/{message_id}/release", response_model=ReleasedOut)
    def release(message_id: str, who: Admin) -> ReleasedOut:
        return ReleasedOut.from_result(services.messages.release(who, message_id))

    @r.patch("/tenant/policy", response_model=SettingsOut)
    def patch_policy(body: PolicySettingsIn, who: Admin) -> dict[str, Any]:
        current = services.tenancy.get_tenant(who.tenant_id).settings
        changes: dict[str, Any] = {}
        if body.secureline is not None:
            merged = dict(current.get("secureline", {}))
            for field, value in body.secureline.model_dump(exclude_unset=True).items():
                if value is None:
                    merged.pop(field, None)
                else:
                    merged[field] = [str(m) for m in value] if field in ("order", "forbidden") else value
            if len(set(merged.get("order", []))) != len(merged.get("order", [])):
                raise ValidationFailed([{"field": "secureline.order", "message": "lists a method twice"}])
            changes["secureline"] = merged or None
        if body.dlp is not None:
            policy_from_settings(body.dlp)  # validates (e.g. unsafe MRN patterns) before saving
            changes["dlp"] = body.dlp or None
        if body.key_discovery is not None:
            changes["key_discovery"] = body.key_discovery
        if body.harvest_keys is not None:
            changes["harvest_keys"] = body.harvest_keys
        require_reason(current, {**current, **changes}, body.reason)
        also = Decisions(services.tenancy.engine).recorder(body.reason or "", audit_weak_notice_change)
        settings = services.tenancy.update_settings(
            who.tenant_id, changes, actor=who.credential_id, also=also
        )
        services.screener.forget(who.tenant_id)
        return {"settings": settings}

    return r


def _record(rec: dkim.DnsRecord) -> dict[str, str]:
    return {"name": rec.name, "type": rec.type, "value": rec.value, "purpose": str(rec.purpose)}
