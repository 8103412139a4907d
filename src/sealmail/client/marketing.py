"""The client's secure-marketing operations (``/v1/marketing/…``, issue 16).

``MARKETING_ROUTES`` joins ``operations.ROUTES``; ``MarketingMethods`` and
``AsyncMarketingMethods`` are mixed into the two clients, method for method alike.
Bodies are plain dicts with the API's field names (see the OpenAPI document).
"""

from __future__ import annotations

from typing import Any

from sealmail.client._core import BinarySource, Call, UploadBody, segment

P = "/v1/marketing"


def _q(**values: Any) -> dict[str, str | int]:
    return {k: v for k, v in values.items() if v is not None}


CALLS: dict[str, Any] = {
    "define_attribute": lambda body: Call("POST", f"{P}/attributes", json=body),
    "list_attributes": lambda: Call("GET", f"{P}/attributes"),
    "save_contact": lambda body: Call("POST", f"{P}/contacts", json=body),
    "list_contacts": lambda limit=100, cursor=None: Call(
        "GET", f"{P}/contacts", params=_q(limit=limit, cursor=cursor)
    ),
    "export_contacts": lambda: Call("GET", f"{P}/contacts/export.csv"),
    "get_contact": lambda contact_id: Call("GET", f"{P}/contacts/{segment(contact_id)}"),
    "import_contacts": lambda contacts: Call(
        "POST", f"{P}/contacts/batch", json={"contacts": list(contacts)}
    ),
    "get_import": lambda import_id: Call("GET", f"{P}/imports/{segment(import_id)}"),
    "import_errors": lambda import_id, offset=0, limit=100: Call(
        "GET", f"{P}/imports/{segment(import_id)}/errors", params={"offset": offset, "limit": limit}
    ),
    "import_errors_csv": lambda import_id: Call("GET", f"{P}/imports/{segment(import_id)}/errors.csv"),
    "create_list": lambda name: Call("POST", f"{P}/lists", json={"name": name}),
    "list_lists": lambda limit=100, cursor="": Call(
        "GET", f"{P}/lists", params=_q(limit=limit, cursor=cursor or None)
    ),
    "add_list_members": lambda name, contact_ids: Call(
        "POST", f"{P}/lists/{segment(name)}/members", json={"contact_ids": list(contact_ids)}
    ),
    "remove_list_members": lambda name, contact_ids: Call(
        "POST", f"{P}/lists/{segment(name)}/members/remove", json={"contact_ids": list(contact_ids)}
    ),
    "change_consent": lambda contact_id, body: Call(
        "POST", f"{P}/contacts/{segment(contact_id)}/consent", json=body
    ),
    "get_consent": lambda contact_id, limit=200, cursor="": Call(
        "GET", f"{P}/contacts/{segment(contact_id)}/consent", params=_q(limit=limit, cursor=cursor or None)
    ),
    "record_authorization": lambda contact_id, body: Call(
        "POST", f"{P}/contacts/{segment(contact_id)}/authorizations", json=body
    ),
    "list_authorizations": lambda contact_id: Call(
        "GET", f"{P}/contacts/{segment(contact_id)}/authorizations"
    ),
    "save_segment": lambda name, rule: Call("POST", f"{P}/segments", json={"name": name, "rule": rule}),
    "list_segments": lambda limit=100, cursor="": Call(
        "GET", f"{P}/segments", params=_q(limit=limit, cursor=cursor or None)
    ),
    "preview_rule": lambda rule, sample=20: Call(
        "POST", f"{P}/segments/preview", json={"rule": rule, "sample": sample}
    ),
    "preview_segment": lambda ref, sample=20: Call(
        "GET", f"{P}/segments/{segment(ref)}/preview", params={"sample": sample}
    ),
    "set_cap": lambda purpose, max_sends, window_hours: Call(
        "PUT", f"{P}/caps/{segment(purpose)}", json={"max_sends": max_sends, "window_hours": window_hours}
    ),
    "list_caps": lambda: Call("GET", f"{P}/caps"),
    "list_campaigns": lambda limit=50, cursor="": Call(
        "GET", f"{P}/campaigns", params=_q(limit=limit, cursor=cursor or None)
    ),
    "create_campaign": lambda body: Call("POST", f"{P}/campaigns", json=body),
    "get_campaign": lambda campaign_id: Call("GET", f"{P}/campaigns/{segment(campaign_id)}"),
    "send_campaign": lambda campaign_id: Call("POST", f"{P}/campaigns/{segment(campaign_id)}/send"),
    "pause_campaign": lambda campaign_id: Call("POST", f"{P}/campaigns/{segment(campaign_id)}/pause"),
    "resume_campaign": lambda campaign_id: Call("POST", f"{P}/campaigns/{segment(campaign_id)}/resume"),
    "cancel_campaign": lambda campaign_id: Call("POST", f"{P}/campaigns/{segment(campaign_id)}/cancel"),
    "campaign_stats": lambda campaign_id: Call("GET", f"{P}/campaigns/{segment(campaign_id)}/stats"),
    "campaign_checks": lambda campaign_id: Call("GET", f"{P}/campaigns/{segment(campaign_id)}/checks"),
    "campaign_stats_csv": lambda campaign_id: Call("GET", f"{P}/campaigns/{segment(campaign_id)}/stats.csv"),
    "campaign_audience": lambda campaign_id, limit=100, cursor="": Call(
        "GET", f"{P}/campaigns/{segment(campaign_id)}/audience", params=_q(limit=limit, cursor=cursor or None)
    ),
    "save_journey": lambda name, definition: Call(
        "POST", f"{P}/journeys", json={"name": name, "definition": definition}
    ),
    "list_journeys": lambda limit=100, cursor="": Call(
        "GET", f"{P}/journeys", params=_q(limit=limit, cursor=cursor or None)
    ),
    "activate_journey": lambda journey_id: Call("POST", f"{P}/journeys/{segment(journey_id)}/activate"),
    "deactivate_journey": lambda journey_id: Call("POST", f"{P}/journeys/{segment(journey_id)}/deactivate"),
    "journey_event": lambda event, email, key=None: Call(
        "POST", f"{P}/journeys/events", json={"event": event, "email": email, "key": key}
    ),
    "journey_stats": lambda journey_id: Call("GET", f"{P}/journeys/{segment(journey_id)}/stats"),
    "journey_stats_csv": lambda journey_id: Call("GET", f"{P}/journeys/{segment(journey_id)}/stats.csv"),
    "record_conversion": lambda message_id, name, value=None: Call(
        "POST", f"{P}/conversions", json={"message_id": message_id, "name": name, "value": value}
    ),
    "journey_enrollments": lambda journey_id, limit=100, cursor="": Call(
        "GET",
        f"{P}/journeys/{segment(journey_id)}/enrollments",
        params=_q(limit=limit, cursor=cursor or None),
    ),
    "pause_journey": lambda journey_id: Call("POST", f"{P}/journeys/{segment(journey_id)}/pause"),
    "resume_journey": lambda journey_id: Call("POST", f"{P}/journeys/{segment(journey_id)}/resume"),
}

MARKETING_ROUTES: dict[tuple[str, str], str] = {
    ("POST", f"{P}/attributes"): "define_attribute",
    ("GET", f"{P}/attributes"): "list_attributes",
    ("POST", f"{P}/contacts"): "save_contact",
    ("GET", f"{P}/contacts"): "list_contacts",
    ("GET", f"{P}/contacts/export.csv"): "export_contacts",
    ("GET", f"{P}/contacts/{{contact_id}}"): "get_contact",
    ("POST", f"{P}/contacts/import"): "import_contacts_csv",
    ("POST", f"{P}/contacts/batch"): "import_contacts",
    ("GET", f"{P}/imports/{{import_id}}"): "get_import",
    ("GET", f"{P}/imports/{{import_id}}/errors"): "import_errors",
    ("GET", f"{P}/imports/{{import_id}}/errors.csv"): "import_errors_csv",
    ("POST", f"{P}/lists"): "create_list",
    ("GET", f"{P}/lists"): "list_lists",
    ("POST", f"{P}/lists/{{name}}/members"): "add_list_members",
    ("POST", f"{P}/lists/{{name}}/members/remove"): "remove_list_members",
    ("POST", f"{P}/contacts/{{contact_id}}/consent"): "change_consent",
    ("GET", f"{P}/contacts/{{contact_id}}/consent"): "get_consent",
    ("POST", f"{P}/contacts/{{contact_id}}/authorizations"): "record_authorization",
    ("GET", f"{P}/contacts/{{contact_id}}/authorizations"): "list_authorizations",
    ("POST", f"{P}/segments"): "save_segment",
    ("GET", f"{P}/segments"): "list_segments",
    ("POST", f"{P}/segments/preview"): "preview_rule",
    ("GET", f"{P}/segments/{{ref}}/preview"): "preview_segment",
    ("PUT", f"{P}/caps/{{purpose}}"): "set_cap",
    ("GET", f"{P}/caps"): "list_caps",
    ("GET", f"{P}/campaigns"): "list_campaigns",
    ("POST", f"{P}/campaigns"): "create_campaign",
    ("GET", f"{P}/campaigns/{{campaign_id}}"): "get_campaign",
    ("POST", f"{P}/campaigns/{{campaign_id}}/send"): "send_campaign",
    ("POST", f"{P}/campaigns/{{campaign_id}}/pause"): "pause_campaign",
    ("POST", f"{P}/campaigns/{{campaign_id}}/resume"): "resume_campaign",
    ("POST", f"{P}/campaigns/{{campaign_id}}/cancel"): "cancel_campaign",
    ("GET", f"{P}/campaigns/{{campaign_id}}/audience"): "campaign_audience",
    ("GET", f"{P}/campaigns/{{campaign_id}}/stats"): "campaign_stats",
    ("GET", f"{P}/campaigns/{{campaign_id}}/checks"): "campaign_checks",
    ("GET", f"{P}/campaigns/{{campaign_id}}/stats.csv"): "campaign_stats_csv",
    ("POST", f"{P}/journeys"): "save_journey",
    ("GET", f"{P}/journeys"): "list_journeys",
    ("POST", f"{P}/journeys/{{journey_id}}/activate"): "activate_journey",
    ("POST", f"{P}/journeys/{{journey_id}}/deactivate"): "deactivate_journey",
    ("POST", f"{P}/journeys/events"): "journey_event",
    ("GET", f"{P}/journeys/{{journey_id}}/enrollments"): "journey_enrollments",
    ("POST", f"{P}/journeys/{{journey_id}}/pause"): "pause_journey",
    ("POST", f"{P}/journeys/{{journey_id}}/resume"): "resume_journey",
    ("GET", f"{P}/journeys/{{journey_id}}/stats"): "journey_stats",
    ("GET", f"{P}/journeys/{{journey_id}}/stats.csv"): "journey_stats_csv",
    ("POST", f"{P}/conversions"): "record_conversion",
}


def csv_import_call(background: bool = False) -> Call:
    params: dict[str, str | int] = {"background": "true"} if background else {}
    return Call("POST", f"{P}/contacts/import", headers={"Content-Type": "text/csv"}, params=params)


def _sync(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = CALLS[name](*args, **kwargs)
        return self._request(call).text if call.path.endswith(".csv") else self._json(call)

    method.__name__ = name
    return method


def _async(name: str) -> Any:
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = CALLS[name](*args, **kwargs)
        if call.path.endswith(".csv"):
            return (await self._request(call)).text
        return await self._json(call)

    method.__name__ = name
    return method


class MarketingMethods:
    """The marketing operations on ``SealmailClient`` (each returns the API's JSON, or CSV text)."""

    def import_contacts_csv(self, source: BinarySource, background: bool = False) -> dict[str, Any]:
        """Upload a CSV of contacts (path or binary file), streamed; the import report (with
        ``background``: the import's record at once, to follow with ``get_import``)."""
        body = UploadBody(source)
        return dict(self._request(csv_import_call(background), upload=body).json())  # type: ignore[attr-defined]


class AsyncMarketingMethods:
    """The same operations on ``AsyncSealmailClient``."""

    async def import_contacts_csv(self, source: BinarySource, background: bool = False) -> dict[str, Any]:
        body = UploadBody(source)
        call = csv_import_call(background)
        return dict((await self._request(call, upload=body)).json())  # type: ignore[attr-defined]


for _name in CALLS:
    setattr(MarketingMethods, _name, _sync(_name))
    setattr(AsyncMarketingMethods, _name, _async(_name))
