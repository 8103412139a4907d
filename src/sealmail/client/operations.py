"""Every public API operation as a ``Call``: the one place that knows paths and parameters.

The sync and async clients send these; keeping them here means the two clients cannot
drift apart on a URL or a parameter name.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sealmail.client._core import Call, segment
from sealmail.client.types import (
    UNSET,
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


def update_tenant_settings(tls_policy: Mapping[str, str | None]) -> Call:
    return Call("PATCH", "/v1/tenant/settings", json={"tls_policy": dict(tls_policy)})


def update_policy(
    *,
    secureline: Mapping[str, Any] | None,
    dlp: Mapping[str, Any] | None,
    key_discovery: bool | None,
    harvest_keys: bool | None,
) -> Call:
    body: dict[str, Any] = {}
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
