"""The HTTP provider: Twilio's Programmable Messaging REST API and its callbacks.

Sending is a form POST to ``/2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP
basic auth (account SID, auth token), through the SSRF-safe client; the reply's ``sid``
names the message in later status callbacks.  Callbacks (status and inbound) are form
POSTs signed with ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed by the auth token,
over the full callback URL followed by each POST parameter name and value sorted by
name.  A callback that does not verify is refused before anything is read from it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from sealmail.net.http_client import FetchError, SafeHttpClient
from sealmail.sms import segments
from sealmail.sms.providers import InboundText, OutboundText, ProviderReply, ReceiptIn, ReceiptState

STATES = {
    "delivered": ReceiptState.DELIVERED,
    "undelivered": ReceiptState.FAILED,
    "failed": ReceiptState.FAILED,
    "canceled": ReceiptState.FAILED,
    "sent": ReceiptState.SENT,
    "queued": ReceiptState.SENT,
    "sending": ReceiptState.SENT,
    "accepted": ReceiptState.SENT,
}


@dataclass(frozen=True, slots=True)
class TwilioOptions:
    account_sid: str
    auth_token: str
    base_url: str = "https://api.twilio.com"
    # Where Twilio posts status callbacks (``<public URL>/sms/twilio/status``).
    status_callback: str = ""


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify(auth_token: str, url: str, params: Mapping[str, str], given: str) -> bool:
    return bool(given) and hmac.compare_digest(signature(auth_token, url, params), given)


class TwilioProvider:
    name = "twilio"

    def __init__(self, options: TwilioOptions, client: SafeHttpClient) -> None:
        self.options = options
        self.client = client

    async def send(self, text: OutboundText) -> ProviderReply:
        o = self.options
        form = {"To": text.destination, "From": text.source, "Body": text.text}
        if o.status_callback:
            form["StatusCallback"] = o.status_callback
        credentials = base64.b64encode(f"{o.account_sid}:{o.auth_token}".encode()).decode()
        url = f"{o.base_url.rstrip('/')}/2010-04-01/Accounts/{o.account_sid}/Messages.json"
        headers = {
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        try:
            response = await self.client.post(url, urlencode(form).encode(), headers, max_bytes=64 * 1024)
        except FetchError as exc:
            return ProviderReply(False, "", "unreachable", exc.reason)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status not in (200, 201) or not body.get("sid"):
            # Twilio's error body: {"code": 21211, "message": "...", "status": 400}
            return ProviderReply(False, "", str(response.status), f"code {body.get('code', '?')}")
        # Twilio concatenates a long Body itself and says how many segments it billed.
        try:
            parts = int(body.get("num_segments") or 0) or segments.count(text.text)
        except (TypeError, ValueError):
            parts = segments.count(text.text)
        return ProviderReply(
            True, str(body["sid"])[:64], str(body.get("status", "queued"))[:20], segments=parts
        )

    def receipt(self, params: Mapping[str, str]) -> ReceiptIn | None:
        sid = params.get("MessageSid", "")
        raw = params.get("MessageStatus", "")
        if not sid or raw not in STATES:
            return None
        return ReceiptIn(self.name, sid[:64], STATES[raw], raw, params.get("ErrorCode", "")[:10])

    def inbound(self, params: Mapping[str, str]) -> InboundText | None:
        source, destination = params.get("From", ""), params.get("To", "")
        if not source or not destination:
            return None
        return InboundText(self.name, source[:20], destination[:20], params.get("Body", "")[:1600])

    async def close(self) -> None:
        return None
