"""What a webhook endpoint may say: its settings, a partial change, and the checks on both.

Pure apart from the optional destination vetter (SSRF: refused when configured, not only
at send), so the API, the CLI and the dispatcher apply one rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sealmail.domain.tls_policy import Stream
from sealmail.errors import ValidationFailed
from sealmail.net.destination import DestinationVetter
from sealmail.net.http_client import url_problem
from sealmail.webhooks.payload import PayloadMode
from sealmail.webhooks.states import EndpointStatus

_EVENT_TYPE_RE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*)?$")


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    url: str
    event_types: Sequence[str] = ()
    streams: Sequence[str] = ()
    payload: PayloadMode = "thin"
    description: str = ""


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    """A partial update: ``None`` leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    streams: Sequence[str] | None = None
    payload: PayloadMode | None = None
    description: str | None = None
    status: EndpointStatus | None = None


def carries_phi(streams: Sequence[str]) -> bool:
    """An empty filter means every stream, the phi stream included."""
    return not streams or str(Stream.PHI) in streams


def check_endpoint(
    url: str,
    streams: Sequence[str],
    event_types: Sequence[str],
    *,
    allow_insecure_http: bool,
    vetter: DestinationVetter | None = None,
) -> None:
    """Raise ``ValidationFailed`` listing every problem with an endpoint's settings."""
    problems: list[dict[str, str]] = []
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("https", "http") or not host:
        problems.append({"field": "url", "message": "an absolute https:// URL is required"})
    elif "@" in parts.netloc:
        problems.append({"field": "url", "message": "credentials in the URL are not allowed"})
    elif parts.scheme == "http" and carries_phi(streams) and not allow_insecure_http:
        # HIPAA §164.312(e)(1) transmission security: events of the phi stream (and an
        # endpoint that takes every stream) only travel over TLS.
        problems.append(
            {"field": "url", "message": "https is required for endpoints receiving the phi stream"}
        )
    elif (unfetchable := url_problem(url, allow_http=True)) is not None:
        # What the sending client would refuse (a numeric-looking host such as 127.1, an
        # unencoded path, a control character) is refused now, not at every send.
        problems.append({"field": "url", "message": f"the URL cannot be fetched: {unfetchable}"})
    elif vetter is not None and (refused := vetter.refusal(host)):
        # Refused when configured, not only at send (SSRF: the metadata service, the LAN).
        problems.append({"field": "url", "message": refused})
    known = {str(s) for s in Stream}
    for i, stream in enumerate(streams):
        if stream not in known:
            problems.append({"field": f"streams[{i}]", "message": f"one of {', '.join(sorted(known))}"})
    for i, event_type in enumerate(event_types):
        if not _EVENT_TYPE_RE.match(event_type):
            problems.append(
                {"field": f"event_types[{i}]", "message": 'a type like "message.bounced" or "message.*"'}
            )
    if problems:
        raise ValidationFailed(problems)
