"""Every public API operation as a ``Call``: the one place that knows paths and parameters.

Size: one file on purpose: the client mirrors every API route, and this is the single
table of paths and parameters both clients send; split, the routes would drift apart.

The sync and async clients send these; keeping them here means the two clients cannot
drift apart on a URL or a parameter name.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sealmail.client._core import Call, segment
from sealmail.client.marketing import MARKETING_ROUTES
from sealmail.client.types import (
    UNSET,
    BatchItem,
    BulkMessage,
    OutgoingMessage,
    RawMessage,
    Stream,
    SuppressionStream,
    Unset,
    WebhookPayload,
)


def _query(**values: str | int | datetime | None) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _idempotent(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


# -- messages ---------------------------------------------------------------------------------


def send_message(message: OutgoingMessage, idempotency_key: str) -> Call:
    return Call("POST", "/v1/messages", json=message.to_json(), headers=_idempotent(idempotency_key))


def send_raw(message: RawMessage, idempotency_key: str) -> Call:
    return Call("POST", "/v1/messages/raw", json=message.to_json(), headers=_idempotent(idempotency_key))


def get_message(message_id: str) -> Call:
    return Call("GET", f"/v1/messages/{segment(message_id)}")


def get_content(message_id: str) -> Call:
    return Call("GET", f"/v1/messages/{segment(message_id)}/content")


def list_messages(
    *,
    limit: int,
    cursor: str | None,
    status: str | None,
    recipient: str | None,
    tag: str | None,
    stream: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Call:
    params = _query(
        limit=limit,
        cursor=cursor,
        status=status,
        recipient=recipient,
        tag=tag,
        stream=stream,
        since=since,
        until=until,
    )
    return Call("GET", "/v1/messages", params=params)


def cancel(message_id: str) -> Call:
    return Call("POST", f"/v1/messages/{segment(message_id)}/cancel")


def list_events(
    *,
    limit: int,
    cursor: str | None,
    types: Sequence[str] | None,
    message_id: str | None,
    recipient: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Call:
    params = _query(
        limit=limit,
        cursor=cursor,
        type=",".join(types) if types else None,
        message_id=message_id,
        recipient=recipient,
        since=since,
        until=until,
    )
    return Call("GET", "/v1/events", params=params)


def captured(*, limit: int, cursor: str | None) -> Call:
    return Call("GET", "/v1/captured", params=_query(limit=limit, cursor=cursor))


# -- tenant -----------------------------------------------------------------------------------


def get_tenant() -> Call:
    return Call("GET", "/v1/tenant")


def update_tenant_settings(tls_policy: Mapping[str, str | None], reason: str | None = None) -> Call:
    body: dict[str, Any] = {"tls_policy": dict(tls_policy)}
    if reason is not None:
        body["reason"] = reason
    return Call("PATCH", "/v1/tenant/settings", json=body)


def update_policy(
    *,
    secureline: Mapping[str, Any] | None,
    dlp: Mapping[str, Any] | None,
    key_discovery: bool | None,
    harvest_keys: bool | None,
    reason: str | None = None,
) -> Call:
    body: dict[str, Any] = {} if reason is None else {"reason": reason}
    if secureline is not None:
        body["secureline"] = dict(secureline)
    if dlp is not None:
        body["dlp"] = dict(dlp)
    if key_discovery is not None:
        body["key_discovery"] = key_discovery
    if harvest_keys is not None:
        body["harvest_keys"] = harvest_keys
    return Call("PATCH", "/v1/tenant/policy", json=body)


def get_archive_key() -> Call:
    return Call("GET", "/v1/tenant/archive-key")


def get_smime_identity() -> Call:
    return Call("GET", "/v1/tenant/smime-identity")


def set_smime_identity(certificate_pem: str, private_key_pem: str) -> Call:
    body = {"certificate": certificate_pem, "private_key": private_key_pem}
    return Call("PUT", "/v1/tenant/smime-identity", json=body)


# -- domains ----------------------------------------------------------------------------------


def list_domains() -> Call:
    return Call("GET", "/v1/domains")


def add_domain(name: str) -> Call:
    return Call("POST", "/v1/domains", json={"name": name})


def verify_domain(name: str) -> Call:
    return Call("POST", f"/v1/domains/{segment(name)}/verify")


def create_dkim(name: str) -> Call:
    return Call("POST", f"/v1/domains/{segment(name)}/dkim")


def domain_records(name: str) -> Call:
    return Call("GET", f"/v1/domains/{segment(name)}/records")


def check_domain(name: str) -> Call:
    return Call("POST", f"/v1/domains/{segment(name)}/check")


# -- credentials ------------------------------------------------------------------------------


def list_api_keys() -> Call:
    return Call("GET", "/v1/api-keys")


def create_api_key(name: str, scopes: Sequence[str]) -> Call:
    return Call("POST", "/v1/api-keys", json={"name": name, "scopes": list(scopes)})


def revoke_api_key(key_id: str) -> Call:
    return Call("DELETE", f"/v1/api-keys/{segment(key_id)}")


def list_smtp_credentials() -> Call:
    return Call("GET", "/v1/smtp-credentials")


def create_smtp_credential(stream: Stream) -> Call:
    return Call("POST", "/v1/smtp-credentials", json={"stream": stream})


def revoke_smtp_credential(credential_id: str) -> Call:
    return Call("DELETE", f"/v1/smtp-credentials/{segment(credential_id)}")


# -- recipient keys and quarantine ------------------------------------------------------------


def upload_key(key: str | bytes, trusted: bool) -> Call:
    # Binary certificates travel base64-encoded; armored/PEM text goes as it is.
    text = key if isinstance(key, str) else base64.b64encode(key).decode("ascii")
    if isinstance(key, bytes) and key.lstrip().startswith(b"-----BEGIN"):
        text = key.decode("ascii")
    return Call("POST", "/v1/keys", json={"key": text, "trusted": trusted})


def list_keys(address: str | None, kind: str | None) -> Call:
    return Call("GET", "/v1/keys", params=_query(address=address, kind=kind))


def get_key(key_id: str) -> Call:
    return Call("GET", f"/v1/keys/{segment(key_id)}")


def delete_key(key_id: str) -> Call:
    return Call("DELETE", f"/v1/keys/{segment(key_id)}")


def quarantine(*, limit: int, cursor: str | None) -> Call:
    return Call("GET", "/v1/quarantine", params=_query(limit=limit, cursor=cursor))


def release(message_id: str) -> Call:
    return Call("POST", f"/v1/messages/{segment(message_id)}/release")


# -- webhooks ---------------------------------------------------------------------------------


def list_webhook_endpoints() -> Call:
    return Call("GET", "/v1/webhook-endpoints")


def create_webhook_endpoint(
    url: str,
    event_types: Sequence[str],
    streams: Sequence[str],
    payload: WebhookPayload,
    description: str,
) -> Call:
    body = {
        "url": url,
        "event_types": list(event_types),
        "streams": list(streams),
        "payload": payload,
        "description": description,
    }
    return Call("POST", "/v1/webhook-endpoints", json=body)


def get_webhook_endpoint(endpoint_id: str) -> Call:
    return Call("GET", f"/v1/webhook-endpoints/{segment(endpoint_id)}")


def update_webhook_endpoint(endpoint_id: str, changes: Mapping[str, Any]) -> Call:
    body = {k: (list(v) if isinstance(v, tuple) else v) for k, v in changes.items() if v is not None}
    return Call("PATCH", f"/v1/webhook-endpoints/{segment(endpoint_id)}", json=body)


def delete_webhook_endpoint(endpoint_id: str) -> Call:
    return Call("DELETE", f"/v1/webhook-endpoints/{segment(endpoint_id)}")


def rotate_webhook_secret(endpoint_id: str, overlap_seconds: int) -> Call:
    path = f"/v1/webhook-endpoints/{segment(endpoint_id)}/rotate-secret"
    return Call("POST", path, json={"overlap_seconds": overlap_seconds})


def webhook_test(endpoint_id: str) -> Call:
    return Call("POST", f"/v1/webhook-endpoints/{segment(endpoint_id)}/test")


def webhook_deliveries(endpoint_id: str, *, limit: int, before: str | None) -> Call:
    path = f"/v1/webhook-endpoints/{segment(endpoint_id)}/deliveries"
    return Call("GET", path, params=_query(limit=limit, before=before))


def replay_webhook_delivery(delivery_id: str) -> Call:
    return Call("POST", f"/v1/webhook-deliveries/{segment(delivery_id)}/replay")


def replay_webhook_endpoint(endpoint_id: str, since: datetime) -> Call:
    path = f"/v1/webhook-endpoints/{segment(endpoint_id)}/replay"
    return Call("POST", path, params=_query(since=since))


# -- portal -----------------------------------------------------------------------------------


def recall(message_id: str) -> Call:
    return Call("POST", f"/v1/messages/{segment(message_id)}/recall")


def configure_portal(
    message_id: str, *, expires_at: datetime | Unset | None, passphrase: str | Unset | None
) -> Call:
    body: dict[str, Any] = {}
    if expires_at is not UNSET:
        body["expires_at"] = expires_at.isoformat() if expires_at is not None else None
    if passphrase is not UNSET:
        body["passphrase"] = passphrase
    return Call("PATCH", f"/v1/messages/{segment(message_id)}/portal", json=body)


def portal_status(message_id: str) -> Call:
    return Call("GET", "/v1/portal/messages", params={"message_id": message_id})


# -- suppressions -----------------------------------------------------------------------------


def list_suppressions(
    *,
    limit: int,
    cursor: str | None,
    stream: SuppressionStream | None,
    reason: str | None,
    address: str | None,
) -> Call:
    params = _query(limit=limit, cursor=cursor, stream=stream, reason=reason, address=address)
    return Call("GET", "/v1/suppressions", params=params)


def add_suppression(
    address: str, stream: SuppressionStream, reason: str, expires_at: datetime | None
) -> Call:
    body: dict[str, Any] = {"address": address, "stream": stream, "reason": reason}
    if expires_at is not None:
        body["expires_at"] = expires_at.isoformat()
    return Call("POST", "/v1/suppressions", json=body)


def remove_suppression(address: str, stream: SuppressionStream) -> Call:
    # Query parameters, not path segments: an address and "*" need no escaping rules.
    return Call("DELETE", "/v1/suppressions", params={"address": address, "stream": stream})


def export_suppressions(stream: SuppressionStream | None, reason: str | None) -> Call:
    return Call("GET", "/v1/suppressions/export.csv", params=_query(stream=stream, reason=reason))


def get_suppression(suppression_id: str) -> Call:
    return Call("GET", f"/v1/suppressions/{segment(suppression_id)}")


# -- TLS reports (RFC 8460) received about the tenant's domains ---------------------------------


def list_tls_reports(limit: int) -> Call:
    return Call("GET", "/v1/tlsrpt/reports", params={"limit": limit})


def get_tls_report(report_id: str) -> Call:
    return Call("GET", f"/v1/tlsrpt/reports/{segment(report_id)}")


def upload_tls_report(report: Mapping[str, Any]) -> Call:
    # The route takes application/tlsrpt+gzip too; JSON is what a client holds already.
    return Call("POST", "/v1/tlsrpt/reports", json=dict(report))


# -- templates, batch and bulk ----------------------------------------------------------------


def list_templates() -> Call:
    return Call("GET", "/v1/templates")


def create_template(name: str, subject: str, html: str | None, text: str | None) -> Call:
    body = {"name": name, "subject": subject, "html": html, "text": text}
    return Call("POST", "/v1/templates", json=body)


def get_template(name: str, version: int | None) -> Call:
    return Call("GET", f"/v1/templates/{segment(name)}", params=_query(version=version))


def update_template(name: str, subject: str, html: str | None, text: str | None) -> Call:
    body = {"subject": subject, "html": html, "text": text}
    return Call("PUT", f"/v1/templates/{segment(name)}", json=body)


def delete_template(name: str) -> Call:
    return Call("DELETE", f"/v1/templates/{segment(name)}")


def preview_template(name: str, template_data: Mapping[str, Any], version: int | None) -> Call:
    body: dict[str, Any] = {"template_data": dict(template_data)}
    if version is not None:
        body["version"] = version
    return Call("POST", f"/v1/templates/{segment(name)}/preview", json=body)


def send_batch(items: Sequence[OutgoingMessage | BatchItem], idempotency_key: str) -> Call:
    body = {"messages": [item.to_json() for item in items]}
    return Call("POST", "/v1/messages/batch", json=body, headers=_idempotent(idempotency_key))


def send_bulk(message: BulkMessage, idempotency_key: str) -> Call:
    return Call("POST", "/v1/messages/bulk", json=message.to_json(), headers=_idempotent(idempotency_key))


def get_bulk(job_id: str, *, limit: int, cursor: str | None) -> Call:
    return Call("GET", f"/v1/bulk/{segment(job_id)}", params=_query(limit=limit, cursor=cursor))


# -- files ------------------------------------------------------------------------------------


def upload_file(filename: str, content_type: str, size: int | None) -> Call:
    """The headers of a streamed upload; the client supplies the raw body itself."""
    # RFC 6266/8187: the name travels percent-encoded, so any Unicode name survives.
    disposition = f"attachment; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": disposition,
        "X-File-Content-Type": content_type,
    }
    if size is not None:
        # A known length lets the server refuse an over-limit file before any byte is sent.
        headers["Content-Length"] = str(size)
    return Call("POST", "/v1/files", headers=headers)


def get_file(file_id: str) -> Call:
    return Call("GET", f"/v1/files/{segment(file_id)}")


def delete_file(file_id: str) -> Call:
    return Call("DELETE", f"/v1/files/{segment(file_id)}")


def download_file(file_id: str) -> Call:
    return Call(
        "GET", f"/v1/files/{segment(file_id)}/content", headers={"Accept": "application/octet-stream"}
    )


def send_file(
    file_id: str, from_: str, to: Sequence[str], subject: str, note: str, expires_days: int | None
) -> Call:
    body: dict[str, Any] = {"from": from_, "to": list(to), "subject": subject, "note": note}
    if expires_days is not None:
        body["expires_days"] = expires_days
    return Call("POST", f"/v1/files/{segment(file_id)}/send", json=body)


# -- coverage ---------------------------------------------------------------------------------

# Every public route and the client method that calls it (the same name on both clients).
# tests/integration/client/test_coverage.py compares this with the OpenAPI document, so a
# route added without a client method fails there.
# -- evidence ------------------------------------------------------------------------------------


def get_proof(message_id: str, recipient_id: str) -> Call:
    return Call("GET", f"/v1/messages/{segment(message_id)}/recipients/{segment(recipient_id)}/proof")


def delivery_report(since: datetime, until: datetime) -> Call:
    return Call("GET", "/v1/reports/delivery.csv", params=_query(since=since, until=until))


# -- secure forms ---------------------------------------------------------------------------------
def list_forms(limit: int | None, cursor: str | None) -> Call:
    return Call("GET", "/v1/forms", params=_query(limit=limit, cursor=cursor))


def create_form(definition: Mapping[str, Any]) -> Call:
    return Call("POST", "/v1/forms", json=dict(definition))


def get_form(form_id: str, version: int | None) -> Call:
    return Call("GET", f"/v1/forms/{segment(form_id)}", params=_query(version=version))


def update_form(form_id: str, definition: Mapping[str, Any]) -> Call:
    return Call("PUT", f"/v1/forms/{segment(form_id)}", json=dict(definition))


def archive_form(form_id: str) -> Call:
    return Call("DELETE", f"/v1/forms/{segment(form_id)}")


def list_form_submissions(form_id: str, limit: int | None, cursor: str | None) -> Call:
    return Call("GET", f"/v1/forms/{segment(form_id)}/submissions", params=_query(limit=limit, cursor=cursor))


def get_form_submission(form_id: str, submission_id: str) -> Call:
    return Call("GET", f"/v1/forms/{segment(form_id)}/submissions/{segment(submission_id)}")


# -- secure texting ------------------------------------------------------------------------------
def add_sms_sender(number: str) -> Call:
    return Call("POST", "/v1/sms/senders", json={"number": number})


def put_sms_contact(number: str, contact: Mapping[str, Any]) -> Call:
    return Call("PUT", f"/v1/sms/contacts/{segment(number)}", json=dict(contact))


def get_sms_contact(number: str) -> Call:
    return Call("GET", f"/v1/sms/contacts/{segment(number)}")


def list_sms_texts(message_id: str | None, limit: int | None) -> Call:
    return Call("GET", "/v1/sms/texts", params=_query(message_id=message_id, limit=limit))


def get_retention() -> Call:
    return Call("GET", "/v1/evidence/retention")


def set_retention(content_days: int, metadata_days: int, audit_days: int) -> Call:
    body = {"content_days": content_days, "metadata_days": metadata_days, "audit_days": audit_days}
    return Call("PUT", "/v1/evidence/retention", json=body)


def purge_retention() -> Call:
    return Call("POST", "/v1/evidence/retention/purge")


def list_legal_holds(active: bool) -> Call:
    return Call("GET", "/v1/evidence/holds", params={"active": "true" if active else "false"})


def place_legal_hold(scope: str, reason: str, target: str) -> Call:
    return Call("POST", "/v1/evidence/holds", json={"scope": scope, "target": target, "reason": reason})


def get_anchor_recipients() -> Call:
    return Call("GET", "/v1/evidence/anchor-recipients")


def set_anchor_recipients(addresses: Sequence[str]) -> Call:
    return Call("PUT", "/v1/evidence/anchor-recipients", json={"anchor_recipients": list(addresses)})


def activity_review(month: str) -> Call:
    return Call("GET", f"/v1/evidence/activity-review/{segment(month)}")


def review_settings() -> Call:
    return Call("GET", "/v1/evidence/activity-review/settings")


def set_review_settings(
    time_zone: str, start: int, end: int, weekdays: list[int], large_reads: int | None = None
) -> Call:
    body = {"time_zone": time_zone, "start": start, "end": end, "weekdays": weekdays}
    return Call("PUT", "/v1/evidence/activity-review/settings", json={**body, "large_reads": large_reads})


def sign_off_activity_review(month: str, note: str) -> Call:
    return Call("POST", f"/v1/evidence/activity-review/{segment(month)}/sign-off", json={"note": note})


def release_legal_hold(hold_id: str) -> Call:
    return Call("POST", f"/v1/evidence/holds/{segment(hold_id)}/release")


def evidence_report(name: str, since: datetime | None, until: datetime | None, fmt: str,
                    filters: Mapping[str, str]) -> Call:  # fmt: skip
    params = {**_query(since=since, until=until), "format": fmt, **filters}
    return Call("GET", f"/v1/evidence/reports/{segment(name)}", params=params)


def evidence_pack(period: str) -> Call:
    return Call("GET", "/v1/evidence/pack", params={"period": period})


def plain_warning() -> Call:
    return Call("GET", "/v1/evidence/plain-requests/warning")


def record_plain_request(address: str, evidence: str) -> Call:
    return Call("POST", "/v1/evidence/plain-requests", json={"address": address, "evidence": evidence})


def list_plain_requests(address: str | None) -> Call:
    return Call("GET", "/v1/evidence/plain-requests", params=_query(address=address))


def get_plain_request(request_id: str) -> Call:
    return Call("GET", f"/v1/evidence/plain-requests/{segment(request_id)}")


def revoke_plain_request(request_id: str, reason: str) -> Call:
    return Call("POST", f"/v1/evidence/plain-requests/{segment(request_id)}/revoke", json={"reason": reason})


def record_comms_preference(address: str, kind: str, evidence: str, alternative: str | None) -> Call:
    body = {"address": address, "kind": kind, "evidence": evidence, "alternative": alternative}
    return Call("POST", "/v1/evidence/comms-preferences", json=body)


def list_comms_preferences(address: str | None, active: bool) -> Call:
    params = {**_query(address=address), **({"active": "true"} if active else {})}
    return Call("GET", "/v1/evidence/comms-preferences", params=params)


def get_comms_preference(preference_id: str) -> Call:
    return Call("GET", f"/v1/evidence/comms-preferences/{segment(preference_id)}")


def revoke_comms_preference(preference_id: str, reason: str) -> Call:
    path = f"/v1/evidence/comms-preferences/{segment(preference_id)}/revoke"
    return Call("POST", path, json={"reason": reason})


_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/messages"): "send_message",
    ("POST", "/v1/messages/raw"): "send_raw",
    ("GET", "/v1/messages"): "list_messages",
    ("GET", "/v1/messages/{message_id}"): "get_message",
    ("GET", "/v1/messages/{message_id}/content"): "get_content",
    ("POST", "/v1/messages/{message_id}/cancel"): "cancel",
    ("GET", "/v1/events"): "list_events",
    ("GET", "/v1/captured"): "captured",
    ("GET", "/v1/tenant"): "get_tenant",
    ("PATCH", "/v1/tenant/settings"): "update_tenant_settings",
    ("PATCH", "/v1/tenant/policy"): "update_policy",
    ("GET", "/v1/tenant/archive-key"): "get_archive_key",
    ("GET", "/v1/tenant/smime-identity"): "get_smime_identity",
    ("PUT", "/v1/tenant/smime-identity"): "set_smime_identity",
    ("GET", "/v1/domains"): "list_domains",
    ("POST", "/v1/domains"): "add_domain",
    ("POST", "/v1/domains/{name}/verify"): "verify_domain",
    ("POST", "/v1/domains/{name}/dkim"): "create_dkim",
    ("GET", "/v1/domains/{name}/records"): "domain_records",
    ("POST", "/v1/domains/{name}/check"): "check_domain",
    ("GET", "/v1/api-keys"): "list_api_keys",
    ("POST", "/v1/api-keys"): "create_api_key",
    ("DELETE", "/v1/api-keys/{key_id}"): "revoke_api_key",
    ("GET", "/v1/smtp-credentials"): "list_smtp_credentials",
    ("POST", "/v1/smtp-credentials"): "create_smtp_credential",
    ("DELETE", "/v1/smtp-credentials/{cred_id}"): "revoke_smtp_credential",
    ("POST", "/v1/keys"): "upload_key",
    ("GET", "/v1/keys"): "list_keys",
    ("GET", "/v1/keys/{key_id}"): "get_key",
    ("DELETE", "/v1/keys/{key_id}"): "delete_key",
    ("GET", "/v1/quarantine"): "quarantine",
    ("POST", "/v1/messages/{message_id}/release"): "release",
    ("GET", "/v1/webhook-endpoints"): "list_webhook_endpoints",
    ("POST", "/v1/webhook-endpoints"): "create_webhook_endpoint",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): "get_webhook_endpoint",
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): "update_webhook_endpoint",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "delete_webhook_endpoint",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "rotate_webhook_secret",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/test"): "send_webhook_test",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): "webhook_deliveries",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): "replay_webhook_endpoint",
    ("POST", "/v1/webhook-deliveries/{delivery_id}/replay"): "replay_webhook_delivery",
    ("POST", "/v1/messages/{message_id}/recall"): "recall",
    ("PATCH", "/v1/messages/{message_id}/portal"): "configure_portal",
    ("GET", "/v1/portal/messages"): "portal_status",
    ("GET", "/v1/suppressions"): "list_suppressions",
    ("POST", "/v1/suppressions"): "add_suppression",
    ("DELETE", "/v1/suppressions"): "remove_suppression",
    ("GET", "/v1/suppressions/export.csv"): "export_suppressions",
    ("GET", "/v1/suppressions/{suppression_id}"): "get_suppression",
    ("GET", "/v1/tlsrpt/reports"): "list_tls_reports",
    ("GET", "/v1/tlsrpt/reports/{report_id}"): "get_tls_report",
    ("POST", "/v1/tlsrpt/reports"): "upload_tls_report",
    ("GET", "/v1/templates"): "list_templates",
    ("POST", "/v1/templates"): "create_template",
    ("GET", "/v1/templates/{name}"): "get_template",
    ("PUT", "/v1/templates/{name}"): "update_template",
    ("DELETE", "/v1/templates/{name}"): "delete_template",
    ("POST", "/v1/templates/{name}/preview"): "preview_template",
    ("POST", "/v1/messages/batch"): "send_batch",
    ("POST", "/v1/messages/bulk"): "send_bulk",
    ("GET", "/v1/bulk/{job_id}"): "get_bulk",
    ("POST", "/v1/files"): "upload_file",
    ("GET", "/v1/files/{file_id}"): "get_file",
    ("DELETE", "/v1/files/{file_id}"): "delete_file",
    ("GET", "/v1/files/{file_id}/content"): "download_file",
    ("POST", "/v1/files/{file_id}/send"): "send_file",
    ("GET", "/v1/messages/{message_id}/recipients/{recipient_id}/proof"): "get_proof",
    ("GET", "/v1/reports/delivery.csv"): "delivery_report",
    ("GET", "/v1/forms"): "list_forms",
    ("POST", "/v1/forms"): "create_form",
    ("GET", "/v1/forms/{form_id}"): "get_form",
    ("PUT", "/v1/forms/{form_id}"): "update_form",
    ("DELETE", "/v1/forms/{form_id}"): "archive_form",
    ("GET", "/v1/forms/{form_id}/submissions"): "list_form_submissions",
    ("GET", "/v1/forms/{form_id}/submissions/{submission_id}"): "get_form_submission",
    ("POST", "/v1/sms/senders"): "add_sms_sender",
    ("PUT", "/v1/sms/contacts/{number}"): "put_sms_contact",
    ("GET", "/v1/sms/contacts/{number}"): "get_sms_contact",
    ("GET", "/v1/sms/texts"): "list_sms_texts",
    ("GET", "/v1/evidence/anchor-recipients"): "get_anchor_recipients",
    ("PUT", "/v1/evidence/anchor-recipients"): "set_anchor_recipients",
    ("GET", "/v1/evidence/activity-review/settings"): "review_settings",
    ("PUT", "/v1/evidence/activity-review/settings"): "set_review_settings",
    ("GET", "/v1/evidence/activity-review/{month}"): "activity_review",
    ("POST", "/v1/evidence/activity-review/{month}/sign-off"): "sign_off_activity_review",
    ("GET", "/v1/evidence/retention"): "get_retention",
    ("PUT", "/v1/evidence/retention"): "set_retention",
    ("POST", "/v1/evidence/retention/purge"): "purge_retention",
    ("GET", "/v1/evidence/holds"): "list_legal_holds",
    ("POST", "/v1/evidence/holds"): "place_legal_hold",
    ("POST", "/v1/evidence/holds/{hold_id}/release"): "release_legal_hold",
    ("GET", "/v1/evidence/reports/{name}"): "evidence_report",
    ("GET", "/v1/evidence/pack"): "evidence_pack",
    ("GET", "/v1/evidence/plain-requests/warning"): "plain_warning",
    ("POST", "/v1/evidence/plain-requests"): "record_plain_request",
    ("GET", "/v1/evidence/plain-requests"): "list_plain_requests",
    ("GET", "/v1/evidence/plain-requests/{request_id}"): "get_plain_request",
    ("POST", "/v1/evidence/plain-requests/{request_id}/revoke"): "revoke_plain_request",
    ("POST", "/v1/evidence/comms-preferences"): "record_comms_preference",
    ("GET", "/v1/evidence/comms-preferences"): "list_comms_preferences",
    ("GET", "/v1/evidence/comms-preferences/{preference_id}"): "get_comms_preference",
    ("POST", "/v1/evidence/comms-preferences/{preference_id}/revoke"): "revoke_comms_preference",
}

# The secure-marketing routes (``client/marketing.py``) join the same one table.
ROUTES: Mapping[tuple[str, str], str] = {**_ROUTES, **MARKETING_ROUTES}
