"""``SealmailClient``: the blocking client (httpx.Client).

Size: one file on purpose: the client mirrors every API route with one method each, and
keeping them together keeps it method for method the same as ``aio.py``.

Errors arrive as ``SealmailApiError`` (the server's problem document) or
``SealmailTransportError``; 429 and 503 are retried a bounded number of times.  The
client never logs: not the key, not a body, not a URL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import httpx

from sealmail.client import operations as ops
from sealmail.client._core import (
    CHUNK_SIZE,
    BinarySource,
    BinaryTarget,
    Call,
    RetryPolicy,
    UploadBody,
    client_headers,
    discard_target,
    open_target,
    raise_for_problem,
    transport_error,
)
from sealmail.client.marketing import MarketingMethods
from sealmail.client.types import (
    UNSET,
    Accepted,
    ApiKey,
    ArchiveKey,
    BatchItem,
    BatchResult,
    BulkJob,
    BulkMessage,
    CancelResult,
    CapturedMessage,
    DkimRecords,
    Domain,
    DomainCheck,
    Event,
    FileDeleted,
    FileInfo,
    FileSent,
    MessageContent,
    MessageDetail,
    MessageSummary,
    NewApiKey,
    NewSmtpCredential,
    OutgoingMessage,
    PortalRecall,
    PortalStatus,
    QuarantinedMessage,
    RawMessage,
    RecipientKey,
    RecipientKeyWithData,
    ReleaseResult,
    ReplayQueued,
    SmtpCredential,
    Stream,
    Suppression,
    SuppressionStream,
    Template,
    TemplatePreview,
    TemplateWithVersions,
    Tenant,
    TenantSettings,
    Unset,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointWithSecret,
    WebhookPayload,
    WebhookTestResult,
)


class SealmailClient(MarketingMethods):
    """A typed client for the Sealmail REST API.

    ``transport`` replaces the network (``httpx.MockTransport``, or an ``httpx.WSGITransport``)
    in tests.  Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=client_headers(api_key),
            timeout=timeout,
            transport=transport,
            # Redirects are not followed: one would carry the API key to another origin.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"SealmailClient(base_url={self.base_url!r})"

    def __enter__(self) -> SealmailClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport --------------------------------------------------------------------------

    def _request(
        self, call: Call, *, upload: UploadBody | None = None, stream: bool = False
    ) -> httpx.Response:
        """Send ``call``; with ``stream`` the body is left unread (the caller closes it)."""
        attempt = 0
        while True:
            request = self._http.build_request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                headers=dict(call.headers),
                content=upload.chunks() if upload is not None else None,
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise transport_error(exc, call) from exc
            wait = self._retry.delay(attempt, response)
            if upload is not None and not upload.rewindable:
                wait = None  # the bytes are gone: a retry would send an empty or partial file
            if wait is None:
                if stream and response.status_code >= 400:
                    response.read()
                    response.close()
                raise_for_problem(response)
                return response
            response.close()
            attempt += 1
            self._sleep(wait)

    def _json(self, call: Call) -> Any:
        return self._request(call).json()

    def _none(self, call: Call) -> None:
        self._request(call)

    def _pages(self, make: Callable[[str | None], Call], next_field: str = "next_cursor") -> Iterator[Any]:
        cursor: str | None = None
        while True:
            page = self._json(make(cursor))
            yield from page["data"]
            cursor = page.get(next_field)
            if not cursor:
                return

    def _accepted(self, call: Call) -> Accepted:
        response = self._request(call)
        body = response.json()
        body["replayed"] = response.headers.get("idempotent-replayed") == "true"
        return cast(Accepted, body)

    # -- messages ---------------------------------------------------------------------------

    def send_message(self, message: OutgoingMessage, *, idempotency_key: str | None = None) -> Accepted:
        """Queue a message.  Without ``idempotency_key`` one is generated, so a retried
        request (after a 503 or 429) can never send twice."""
        return self._accepted(ops.send_message(message, idempotency_key or uuid.uuid4().hex))

    def send_raw(self, message: RawMessage, *, idempotency_key: str | None = None) -> Accepted:
        return self._accepted(ops.send_raw(message, idempotency_key or uuid.uuid4().hex))

    def get_message(self, message_id: str) -> MessageDetail:
        return cast(MessageDetail, self._json(ops.get_message(message_id)))

    def get_content(self, message_id: str) -> MessageContent:
        """The decrypted content; the server audits every read."""
        return cast(MessageContent, self._json(ops.get_content(message_id)))

    def list_messages(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        tag: str | None = None,
        stream: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 50,
    ) -> Iterator[MessageSummary]:
        """Newest first, fetching further pages as the iteration reaches them."""
        return self._pages(
            lambda cursor: ops.list_messages(
                limit=page_size,
                cursor=cursor,
                status=status,
                recipient=recipient,
                tag=tag,
                stream=stream,
                since=since,
                until=until,
            )
        )

    def cancel(self, message_id: str) -> CancelResult:
        return cast(CancelResult, self._json(ops.cancel(message_id)))

    def list_events(
        self,
        *,
        types: Sequence[str] | None = None,
        message_id: str | None = None,
        recipient: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Event]:
        """Oldest first, as a feed; ``after`` is the id of the last event already seen."""

        def make(cursor: str | None) -> Call:
            return ops.list_events(
                limit=page_size,
                cursor=cursor or after,
                types=types,
                message_id=message_id,
                recipient=recipient,
                since=since,
                until=until,
            )

        return self._pages(make)

    def captured(self, *, page_size: int = 50) -> Iterator[CapturedMessage]:
        """What the built-in capture sink received for this tenant (development setups)."""
        return self._pages(lambda cursor: ops.captured(limit=page_size, cursor=cursor))

    # -- tenant -----------------------------------------------------------------------------

    def get_tenant(self) -> Tenant:
        return cast(Tenant, self._json(ops.get_tenant()))

    def update_tenant_settings(
        self, *, tls_policy: Mapping[str, str | None], reason: str | None = None
    ) -> TenantSettings:
        """Per-stream TLS policy; ``None`` for a stream restores its default."""
        return cast(TenantSettings, self._json(ops.update_tenant_settings(tls_policy, reason)))

    def update_policy(
        self,
        *,
        secureline: Mapping[str, Any] | None = None,
        dlp: Mapping[str, Any] | None = None,
        key_discovery: bool | None = None,
        harvest_keys: bool | None = None,
        reason: str | None = None,
    ) -> TenantSettings:
        """``reason``: required when the change weakens protection (kept in the decisions register)."""
        call = ops.update_policy(
            secureline=secureline,
            dlp=dlp,
            key_discovery=key_discovery,
            harvest_keys=harvest_keys,
            reason=reason,
        )
        return cast(TenantSettings, self._json(call))

    def get_archive_key(self) -> ArchiveKey:
        return cast(ArchiveKey, self._json(ops.get_archive_key()))

    def get_smime_identity(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.get_smime_identity()))

    def set_smime_identity(self, certificate_pem: str, private_key_pem: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.set_smime_identity(certificate_pem, private_key_pem)))

    # -- domains ----------------------------------------------------------------------------

    def list_domains(self) -> list[Domain]:
        return cast(list[Domain], self._json(ops.list_domains())["data"])

    def add_domain(self, name: str) -> Domain:
        return cast(Domain, self._json(ops.add_domain(name)))

    def verify_domain(self, name: str) -> Domain:
        return cast(Domain, self._json(ops.verify_domain(name)))

    def create_dkim(self, name: str) -> DkimRecords:
        return cast(DkimRecords, self._json(ops.create_dkim(name)))

    def domain_records(self, name: str) -> DkimRecords:
        return cast(DkimRecords, self._json(ops.domain_records(name)))

    def check_domain(self, name: str) -> DomainCheck:
        return cast(DomainCheck, self._json(ops.check_domain(name)))

    # -- credentials ------------------------------------------------------------------------

    def list_api_keys(self) -> list[ApiKey]:
        return cast(list[ApiKey], self._json(ops.list_api_keys())["data"])

    def create_api_key(self, name: str, scopes: Sequence[str]) -> NewApiKey:
        """The secret is in the answer once; store it now."""
        return cast(NewApiKey, self._json(ops.create_api_key(name, scopes)))

    def revoke_api_key(self, key_id: str) -> None:
        self._none(ops.revoke_api_key(key_id))

    def list_smtp_credentials(self) -> list[SmtpCredential]:
        return cast(list[SmtpCredential], self._json(ops.list_smtp_credentials())["data"])

    def create_smtp_credential(self, stream: Stream = "transactional") -> NewSmtpCredential:
        return cast(NewSmtpCredential, self._json(ops.create_smtp_credential(stream)))

    def revoke_smtp_credential(self, credential_id: str) -> None:
        self._none(ops.revoke_smtp_credential(credential_id))

    # -- recipient keys and quarantine ------------------------------------------------------

    def upload_key(self, key: str | bytes, *, trusted: bool = False) -> list[RecipientKey]:
        """An OpenPGP certificate (armored or binary) or an X.509 certificate (PEM or DER)."""
        return cast(list[RecipientKey], self._json(ops.upload_key(key, trusted))["data"])

    def list_keys(self, *, address: str | None = None, kind: str | None = None) -> list[RecipientKey]:
        return cast(list[RecipientKey], self._json(ops.list_keys(address, kind))["data"])

    def get_key(self, key_id: str) -> RecipientKeyWithData:
        return cast(RecipientKeyWithData, self._json(ops.get_key(key_id)))

    def delete_key(self, key_id: str) -> None:
        self._none(ops.delete_key(key_id))

    def quarantine(self, *, page_size: int = 100) -> Iterator[QuarantinedMessage]:
        return self._pages(lambda cursor: ops.quarantine(limit=page_size, cursor=cursor))

    def release(self, message_id: str) -> ReleaseResult:
        return cast(ReleaseResult, self._json(ops.release(message_id)))

    # -- webhooks ---------------------------------------------------------------------------

    def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        return cast(list[WebhookEndpoint], self._json(ops.list_webhook_endpoints())["data"])

    def create_webhook_endpoint(
        self,
        url: str,
        *,
        event_types: Sequence[str] = (),
        streams: Sequence[str] = (),
        payload: WebhookPayload = "thin",
        description: str = "",
    ) -> WebhookEndpointWithSecret:
        """The signing secret is in the answer once; store it now."""
        call = ops.create_webhook_endpoint(url, event_types, streams, payload, description)
        return cast(WebhookEndpointWithSecret, self._json(call))

    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        return cast(WebhookEndpoint, self._json(ops.get_webhook_endpoint(endpoint_id)))

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        streams: Sequence[str] | None = None,
        payload: WebhookPayload | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> WebhookEndpoint:
        """Change the given fields; ``None`` leaves a field as it is."""
        changes = {
            "url": url,
            "event_types": None if event_types is None else list(event_types),
            "streams": None if streams is None else list(streams),
            "payload": payload,
            "description": description,
            "status": status,
        }
        return cast(WebhookEndpoint, self._json(ops.update_webhook_endpoint(endpoint_id, changes)))

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self._none(ops.delete_webhook_endpoint(endpoint_id))

    def rotate_webhook_secret(
        self, endpoint_id: str, *, overlap_seconds: int = 86400
    ) -> WebhookEndpointWithSecret:
        call = ops.rotate_webhook_secret(endpoint_id, overlap_seconds)
        return cast(WebhookEndpointWithSecret, self._json(call))

    def send_webhook_test(self, endpoint_id: str) -> WebhookTestResult:
        return cast(WebhookTestResult, self._json(ops.webhook_test(endpoint_id)))

    def webhook_deliveries(self, endpoint_id: str, *, page_size: int = 50) -> Iterator[WebhookDelivery]:
        """Newest first, each with its log of attempts."""
        return self._pages(
            lambda before: ops.webhook_deliveries(endpoint_id, limit=page_size, before=before),
            next_field="next_before",
        )

    def replay_webhook_delivery(self, delivery_id: str) -> WebhookDelivery:
        return cast(WebhookDelivery, self._json(ops.replay_webhook_delivery(delivery_id)))

    def replay_webhook_endpoint(self, endpoint_id: str, *, since: datetime) -> ReplayQueued:
        return cast(ReplayQueued, self._json(ops.replay_webhook_endpoint(endpoint_id, since)))

    # -- portal -----------------------------------------------------------------------------

    def recall(self, message_id: str) -> PortalRecall:
        """Recall: cancel recipients not yet sent to and revoke every portal recipient's access."""
        return cast(PortalRecall, self._json(ops.recall(message_id)))

    def configure_portal(
        self,
        message_id: str,
        *,
        expires_at: datetime | Unset | None = UNSET,
        passphrase: str | Unset | None = UNSET,
    ) -> PortalStatus:
        """Change portal expiry or passphrase; ``None`` clears, ``UNSET`` leaves as is."""
        call = ops.configure_portal(message_id, expires_at=expires_at, passphrase=passphrase)
        return cast(PortalStatus, self._json(call))

    def portal_status(self, message_id: str) -> PortalStatus:
        return cast(PortalStatus, self._json(ops.portal_status(message_id)))

    # -- suppressions -----------------------------------------------------------------------

    def list_suppressions(
        self,
        *,
        stream: SuppressionStream | None = None,
        reason: str | None = None,
        address: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Suppression]:
        """Newest first, fetching further pages as the iteration reaches them."""
        return self._pages(
            lambda cursor: ops.list_suppressions(
                limit=page_size, cursor=cursor, stream=stream, reason=reason, address=address
            )
        )

    def add_suppression(
        self,
        address: str,
        *,
        stream: SuppressionStream = "*",
        reason: str = "manual",
        expires_at: datetime | None = None,
    ) -> Suppression:
        """Suppress ``address`` on ``stream`` ("*": every stream); ``reason`` manual or unsubscribe."""
        call = ops.add_suppression(address, stream, reason, expires_at)
        return cast(Suppression, self._json(call))

    def remove_suppression(self, address: str, *, stream: SuppressionStream = "*") -> None:
        """Remove the entry for exactly this stream ("*" is its own entry)."""
        self._none(ops.remove_suppression(address, stream))

    def get_suppression(self, suppression_id: str) -> Suppression:
        return cast(Suppression, self._json(ops.get_suppression(suppression_id)))

    def export_suppressions(
        self, *, stream: SuppressionStream | None = None, reason: str | None = None
    ) -> str:
        """The whole list as CSV text (RFC 4180, with a header line)."""
        return (self._request(ops.export_suppressions(stream, reason))).text

    # -- evidence ----------------------------------------------------------------------------

    def get_proof(self, message_id: str, recipient_id: str) -> dict[str, Any]:
        """A delivered recipient's signed proof of delivery; save it and run `sealmail verify`."""
        return cast(dict[str, Any], self._json(ops.get_proof(message_id, recipient_id)))

    def delivery_report(self, since: datetime, until: datetime) -> str:
        """Outcomes and how each recipient was secured, for messages accepted in [since, until), as CSV."""
        return (self._request(ops.delivery_report(since, until))).text

    # -- retention, legal holds, reports, the plain-mail register, the pack (issue 15) ----------

    def get_retention(self) -> dict[str, Any]:
        """The tenant's retention periods in days."""
        return cast(dict[str, Any], self._json(ops.get_retention()))

    def set_retention(self, content_days: int, metadata_days: int, audit_days: int) -> dict[str, Any]:
        """Set retention; metadata or audit below 2192 days (six years) is refused (422)."""
        return cast(dict[str, Any], self._json(ops.set_retention(content_days, metadata_days, audit_days)))

    def purge_retention(self) -> dict[str, Any]:
        """Crypto-shred what is past its period now (the worker also does, on a schedule)."""
        return cast(dict[str, Any], self._json(ops.purge_retention()))

    def list_legal_holds(self, *, active: bool = False) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._json(ops.list_legal_holds(active)))

    def place_legal_hold(self, scope: str, reason: str, target: str = "") -> dict[str, Any]:
        """Hold a message (id), a recipient (address) or the whole tenant out of every purge."""
        return cast(dict[str, Any], self._json(ops.place_legal_hold(scope, reason, target)))

    def get_anchor_recipients(self) -> dict[str, Any]:
        """Who is mailed each scheduled audit-chain anchor (the compliance officers)."""
        return cast(dict[str, Any], self._json(ops.get_anchor_recipients()))

    def set_anchor_recipients(self, addresses: Sequence[str]) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.set_anchor_recipients(addresses)))

    def activity_review(self, month: str) -> dict[str, Any]:
        """The month's activity-review queue (YYYY-MM) and its sign-off, if signed."""
        return cast(dict[str, Any], self._json(ops.activity_review(month)))

    def review_settings(self) -> dict[str, Any]:
        """The activity review's working hours and large-read threshold."""
        return cast(dict[str, Any], self._json(ops.review_settings()))

    def set_review_settings(
        self, time_zone: str, start: int, end: int, weekdays: list[int], large_reads: int | None = None
    ) -> dict[str, Any]:
        """Set them (``admin``); large_reads None keeps the threshold; bad values are a 400."""
        call = ops.set_review_settings(time_zone, start, end, weekdays, large_reads)
        return cast(dict[str, Any], self._json(call))

    def sign_off_activity_review(self, month: str, note: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.sign_off_activity_review(month, note)))

    def release_legal_hold(self, hold_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.release_legal_hold(hold_id)))

    def evidence_report(
        self,
        name: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        fmt: str = "csv",
        filters: Mapping[str, str] | None = None,
    ) -> bytes:
        """A report (delivery, secured, access, logins, dlp, quarantine, plain_register, retention)
        as CSV or PDF bytes; filters: sender, recipient_domain, stream, campaign."""
        return (self._request(ops.evidence_report(name, since, until, fmt, filters or {}))).content

    def evidence_pack(self, period: str) -> bytes:
        """The signed evidence pack (zip) of a period such as 2026-Q4; check it with `sealmail verify`."""
        return (self._request(ops.evidence_pack(period))).content

    def plain_warning(self) -> dict[str, Any]:
        """The warning a patient must be given before confirming unencrypted mail."""
        return cast(dict[str, Any], self._json(ops.plain_warning()))

    def record_plain_request(self, address: str, evidence: str) -> dict[str, Any]:
        """Record a patient's confirmed request for unencrypted mail, with the evidence."""
        return cast(dict[str, Any], self._json(ops.record_plain_request(address, evidence)))

    def list_plain_requests(self, *, address: str | None = None) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._json(ops.list_plain_requests(address)))

    def get_plain_request(self, request_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.get_plain_request(request_id)))

    def revoke_plain_request(self, request_id: str, reason: str = "") -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.revoke_plain_request(request_id, reason)))

    def record_comms_preference(
        self, address: str, kind: str, evidence: str, *, alternative: str | None = None
    ) -> dict[str, Any]:
        """Record a patient's confidential-communication preference (164.522(b)): kind
        portal_only, redirect (with ``alternative``) or no_sms, with the evidence."""
        return cast(
            dict[str, Any], self._json(ops.record_comms_preference(address, kind, evidence, alternative))
        )

    def list_comms_preferences(
        self, *, address: str | None = None, active: bool = False
    ) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._json(ops.list_comms_preferences(address, active)))

    def get_comms_preference(self, preference_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.get_comms_preference(preference_id)))

    def revoke_comms_preference(self, preference_id: str, reason: str = "") -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.revoke_comms_preference(preference_id, reason)))

    # -- TLS reports (RFC 8460) -------------------------------------------------------------

    def list_tls_reports(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Reports other MTAs sent about the tenant's domains, newest first."""
        return cast(list[dict[str, Any]], (self._json(ops.list_tls_reports(limit)))["data"])

    def get_tls_report(self, report_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.get_tls_report(report_id)))

    def upload_tls_report(self, report: Mapping[str, Any]) -> dict[str, Any]:
        """Store an RFC 8460 report about one of the tenant's verified domains."""
        return cast(dict[str, Any], self._json(ops.upload_tls_report(report)))

    # -- templates, batch and bulk ----------------------------------------------------------

    def list_templates(self) -> list[Template]:
        """The active (newest) version of each template."""
        return cast(list[Template], self._json(ops.list_templates())["data"])

    def create_template(
        self, name: str, *, subject: str, html: str | None = None, text: str | None = None
    ) -> Template:
        """Version 1 of a new template (Jinja2 sources); 409 if the name is taken."""
        return cast(Template, self._json(ops.create_template(name, subject, html, text)))

    def get_template(self, name: str, *, version: int | None = None) -> TemplateWithVersions:
        return cast(TemplateWithVersions, self._json(ops.get_template(name, version)))

    def update_template(
        self, name: str, *, subject: str, html: str | None = None, text: str | None = None
    ) -> Template:
        """Add a version, which becomes the active one; earlier versions stay readable."""
        return cast(Template, self._json(ops.update_template(name, subject, html, text)))

    def delete_template(self, name: str) -> None:
        """Delete the template with all its versions."""
        self._none(ops.delete_template(name))

    def preview_template(
        self, name: str, template_data: Mapping[str, Any] | None = None, *, version: int | None = None
    ) -> TemplatePreview:
        """Render without storing or sending; a render error is a 422."""
        call = ops.preview_template(name, template_data or {}, version)
        return cast(TemplatePreview, self._json(call))

    def send_batch(
        self, messages: Sequence[OutgoingMessage | BatchItem], *, idempotency_key: str | None = None
    ) -> BatchResult:
        """Up to 500 independent messages, one ordered result per item (an item's error
        does not fail the others).  The generated key makes a retried batch send nothing twice."""
        call = ops.send_batch(messages, idempotency_key or uuid.uuid4().hex)
        return cast(BatchResult, self._json(call))

    def send_bulk(self, message: BulkMessage, *, idempotency_key: str | None = None) -> BulkJob:
        """One template to up to 10,000 recipients; per-recipient errors are in ``get_bulk``."""
        call = ops.send_bulk(message, idempotency_key or uuid.uuid4().hex)
        return cast(BulkJob, self._json(call))

    def get_bulk(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> BulkJob:
        """Progress and counts; ``errors`` is one page, the next from ``next_cursor``."""
        return cast(BulkJob, self._json(ops.get_bulk(job_id, limit=limit, cursor=cursor)))

    # -- files ------------------------------------------------------------------------------

    def upload_file(
        self,
        source: BinarySource,
        *,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> FileInfo:
        """Upload a file from a path or a binary file object, streamed a chunk at a time.

        ``filename`` defaults to the file's own name; ``content_type`` is the file's type
        (the request itself is always ``application/octet-stream``).
        """
        body = UploadBody(source)
        name = filename or body.name
        if not name:
            raise ValueError("name the file: pass filename= for a file object without a name")
        call = ops.upload_file(name, content_type, body.size)
        return cast(FileInfo, (self._request(call, upload=body)).json())

    def get_file(self, file_id: str) -> FileInfo:
        return cast(FileInfo, self._json(ops.get_file(file_id)))

    def delete_file(self, file_id: str) -> FileDeleted:
        """Crypto-shred the file: its key is destroyed first, then its chunks."""
        return cast(FileDeleted, self._json(ops.delete_file(file_id)))

    def send_file(
        self,
        file_id: str,
        *,
        from_: str,
        to: Sequence[str],
        subject: str,
        note: str = "",
        expires_days: int | None = None,
    ) -> FileSent:
        """Send an uploaded file as a secure portal message; each recipient gets a link."""
        call = ops.send_file(file_id, from_, to, subject, note, expires_days)
        return cast(FileSent, self._json(call))

    def download_file(self, file_id: str, target: BinaryTarget) -> int:
        """Stream the sender's copy to ``target`` (a path, or a binary file open for
        writing) without holding it in memory; returns the number of bytes written."""
        call = ops.download_file(file_id)
        response = self._request(call, stream=True)
        try:
            handle, owned = open_target(target)
            written = 0
            try:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    handle.write(chunk)
                    written += len(chunk)
            except BaseException:
                if owned:
                    handle.close()
                    discard_target(target)
                raise
            if owned:
                handle.close()
            return written
        except httpx.TransportError as exc:
            raise transport_error(exc, call) from exc
        finally:
            response.close()

    # -- secure forms (definitions are plain dicts: the API's FormDefinition) -------------------
    def list_forms(self, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.list_forms(limit, cursor)))

    def create_form(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Version 1 of a new hosted form; its ``url`` is live at once."""
        return cast(dict[str, Any], self._json(ops.create_form(definition)))

    def get_form(self, form_id: str, *, version: int | None = None) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.get_form(form_id, version)))

    def update_form(self, form_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Publish a new version; earlier versions stay readable."""
        return cast(dict[str, Any], self._json(ops.update_form(form_id, definition)))

    def archive_form(self, form_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.archive_form(form_id)))

    def list_form_submissions(
        self, form_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.list_form_submissions(form_id, limit, cursor)))

    def get_form_submission(self, form_id: str, submission_id: str) -> dict[str, Any]:
        """The decrypted record (audited on the server)."""
        return cast(dict[str, Any], self._json(ops.get_form_submission(form_id, submission_id)))

    # -- secure texting --------------------------------------------------------------------------
    def add_sms_sender(self, number: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.add_sms_sender(number)))

    def put_sms_contact(self, number: str, contact: Mapping[str, Any]) -> dict[str, Any]:
        """Number, time zone, notice choice (email | both) and consent per purpose."""
        return cast(dict[str, Any], self._json(ops.put_sms_contact(number, contact)))

    def get_sms_contact(self, number: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(ops.get_sms_contact(number)))

    def list_sms_texts(
        self, *, message_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], (self._json(ops.list_sms_texts(message_id, limit)))["data"])
