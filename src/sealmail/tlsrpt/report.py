"""RFC 8460 report documents: the ``_smtp._tls`` record, the JSON report, its e-mail form.

Pure: no I/O.  The JSON follows RFC 8460 §4.4 field for field; the mail follows §5.3
(multipart/report; report-type="tlsrpt" with the gzip'd JSON as application/tlsrpt+gzip).
"""

from __future__ import annotations

import email.utils
import gzip
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any

# RFC 8460 §4.3: the result types a failure is reported as.
RESULT_TYPES = frozenset(
    {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
)
POLICY_TYPES = frozenset({"sts", "tlsa", "no-policy-found"})
# RFC 8460 §3: reports go only to mailto: and https: URIs.
_SCHEMES = ("mailto:", "https:")
# Report URIs used from one record.  The record is the recipient domain's to write: without a
# cap, one listing hundreds of addresses has every tenant that mailed it send its daily report
# (from the tenant's own domain) to each of them.  RFC 8460 sets no number; DMARC's RFC 7489
# §6.2 lets receivers cap theirs the same way.
MAX_REPORT_URIS = 5
# Whitespace and control characters: never in a URI (RFC 3986 §2), and a CR or LF in a
# mailto: address would become a header line of the report mail.
_URI_BREAKERS = re.compile(r"[\x00-\x20\x7f]")
# Received reports are small (counts and names); anything larger is not a report.
MAX_REPORT_BYTES = 1_000_000
# Counts are stored summed in 32-bit columns; more sessions than this in a day is not a report.
_MAX_COUNT = 2**24

# The transport's failure details (delivery/smtp_client.py) mapped to RFC 8460 §4.3 types,
# first match wins.  Only TLS failures are reported: a refused connection is not one.
_DETAIL_TYPES: tuple[tuple[str, str], ...] = (
    ("offers no starttls", "starttls-not-supported"),
    ("refused starttls", "starttls-not-supported"),
    ("certificate name mismatch", "certificate-host-mismatch"),
    ("expired", "certificate-expired"),
    ("not yet valid", "certificate-expired"),
    ("not trusted", "certificate-not-trusted"),
    ("does not match its tlsa records", "tlsa-invalid"),
    ("no dnssec-validated tlsa", "dane-required"),
    ("tlsa lookup", "dnssec-invalid"),
    ("mta-sts policy", "validation-failure"),
)
TLS_FAILURE_REASONS = frozenset({"tls_required", "tls_failed"})


def result_type(detail: str) -> str:
    lowered = detail.lower()
    return next((kind for needle, kind in _DETAIL_TYPES if needle in lowered), "validation-failure")


def parse_rua(records: Sequence[str]) -> list[str]:
    """The report URIs of a ``_smtp._tls`` TXT RRset (RFC 8460 §3); [] when none is valid.

    Exactly one record must start with ``v=TLSRPTv1``: several make the policy invalid, as
    for MTA-STS.  URIs of other schemes are ignored.
    """
    found = [r for r in records if r.replace(" ", "").startswith("v=TLSRPTv1;")]
    if len(found) != 1:
        return []
    fields: dict[str, str] = {}
    for part in found[0].split(";")[1:]:
        name, eq, value = part.strip().partition("=")
        if eq:
            fields.setdefault(name.strip(), value.strip())
    uris = [u.strip() for u in fields.get("rua", "").split(",") if u.strip()]
    usable = [u for u in uris if u.lower().startswith(_SCHEMES) and not _URI_BREAKERS.search(u)]
    return usable[:MAX_REPORT_URIS]


@dataclass
class PolicyReport:
    """One ``policies`` entry: the policy applied to a domain and what happened under it."""

    policy_type: str
    policy_domain: str
    policy_string: list[str] = field(default_factory=list)
    mx_host: list[str] = field(default_factory=list)
    successes: int = 0
    # (result-type, receiving-mx-hostname, receiving-ip) -> failed sessions
    failures: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        policy: dict[str, Any] = {"policy-type": self.policy_type, "policy-domain": self.policy_domain}
        if self.policy_string:
            policy["policy-string"] = self.policy_string
        if self.mx_host:
            policy["mx-host"] = self.mx_host
        entry: dict[str, Any] = {
            "policy": policy,
            "summary": {
                "total-successful-session-count": self.successes,
                "total-failure-session-count": sum(self.failures.values()),
            },
        }
        details = [
            {
                "result-type": kind,
                "receiving-mx-hostname": host,
                **({"receiving-ip": ip} if ip else {}),
                "failed-session-count": count,
            }
            for (kind, host, ip), count in sorted(self.failures.items())
        ]
        if details:
            entry["failure-details"] = details
        return entry


def day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0, 0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    *, organization: str, contact: str, report_id: str, day: date, policies: Sequence[PolicyReport]
) -> dict[str, Any]:
    """The RFC 8460 §4.4 JSON object for one day (UTC; the RFC's reports cover 24 hours)."""
    start, end = day_range(day)
    return {
        "organization-name": organization,
        "date-range": {
            "start-datetime": _stamp(start),
            "end-datetime": _stamp(end - timedelta(seconds=1)),
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": [p.to_json() for p in policies],
    }


def gzipped(report: Mapping[str, Any]) -> bytes:
    # mtime=0: the same report gzips to the same bytes (RFC 8460 §5.1 asks only for gzip).
    return gzip.compress(json.dumps(report, separators=(",", ":")).encode(), mtime=0)


def file_name(submitter: str, policy_domain: str, day: date, report_id: str) -> str:
    """RFC 8460 §5.1: sender!policy-domain!begin-timestamp!end-timestamp!unique-id.json.gz."""
    start, end = day_range(day)
    unique = "".join(c for c in report_id if c.isalnum())[:32]
    return f"{submitter}!{policy_domain}!{int(start.timestamp())}!{int(end.timestamp()) - 1}!{unique}.json.gz"


def report_mail(
    *, sender: str, to: str, submitter: str, policy_domain: str, day: date, report: Mapping[str, Any]
) -> tuple[bytes, str]:
    """The RFC 8460 §5.3 message carrying ``report``; returns (bytes, Message-ID)."""
    report_id = str(report["report-id"])
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = email.utils.format_datetime(datetime.now(UTC))
    message_id = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    msg["Message-ID"] = message_id
    msg["Subject"] = f"Report Domain: {policy_domain} Submitter: {submitter} Report-ID: <{report_id}>"
    msg["TLS-Report-Domain"] = policy_domain
    msg["TLS-Report-Submitter"] = submitter
    msg.set_content(
        f"This is an aggregate TLS report from {submitter} for {policy_domain} on {day.isoformat()}.\n"
    )
    msg.add_attachment(
        gzipped(report),
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=file_name(submitter, policy_domain, day, report_id),
    )
    # RFC 8460 §5.3: the container is multipart/report with report-type "tlsrpt".
    msg.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"')
    msg.set_boundary(email.utils.make_msgid().strip("<>").replace("@", "."))
    return msg.as_bytes(), message_id


class InvalidReport(ValueError):
    """A received document is not an RFC 8460 report."""


def _require(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidReport(f'"{name}" is missing or not a {kind.__name__}')
    return value


def parse_received(body: bytes) -> dict[str, Any]:
    """A received report (gzip'd or plain JSON), checked against RFC 8460 §4.4's fields."""
    if body[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
                body = f.read(MAX_REPORT_BYTES + 1)
        except (OSError, EOFError) as exc:
            raise InvalidReport("the gzip data is damaged") from exc
    if len(body) > MAX_REPORT_BYTES:
        raise InvalidReport("the report is larger than 1 MB")
    try:
        report = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidReport("the report is not JSON") from exc
    if not isinstance(report, dict):
        raise InvalidReport("the report is not a JSON object")
    for name in ("organization-name", "contact-info", "report-id"):
        _require(report, name, str)
    dates = _require(report, "date-range", dict)
    for name in ("start-datetime", "end-datetime"):
        try:
            moment = datetime.fromisoformat(_require(dates, name, str).replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidReport(f'"{name}" is not an RFC 3339 date-time') from exc
        if moment.tzinfo is None:  # RFC 3339 §5.6: a date-time carries its offset
            raise InvalidReport(f'"{name}" has no time zone offset')
    for entry in _require(report, "policies", list):
        if not isinstance(entry, dict):
            raise InvalidReport("a policies entry is not an object")
        policy = _require(entry, "policy", dict)
        if _require(policy, "policy-type", str) not in POLICY_TYPES:
            raise InvalidReport('"policy-type" is not sts, tlsa or no-policy-found')
        _require(policy, "policy-domain", str)
        summary = _require(entry, "summary", dict)
        for name in ("total-successful-session-count", "total-failure-session-count"):
            if not 0 <= _require(summary, name, int) < _MAX_COUNT:
                raise InvalidReport(f'"{name}" is out of range')
    return report
