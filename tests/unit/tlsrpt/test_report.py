"""RFC 8460 documents: the ``_smtp._tls`` record, failure result types, the JSON report."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest

from sealmail.tlsrpt.report import (
    InvalidReport,
    PolicyReport,
    build_report,
    gzipped,
    parse_received,
    parse_rua,
    result_type,
)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (
            ["v=TLSRPTv1; rua=mailto:a@x.example,https://r.x.example/up"],
            ["mailto:a@x.example", "https://r.x.example/up"],
        ),
        (["v=TLSRPTv1;rua=mailto:a@x.example", "v=spf1 -all"], ["mailto:a@x.example"]),
        # RFC 8460 §3: only mailto: and https:; two TLSRPT records make it invalid.
        (["v=TLSRPTv1; rua=http://r.x.example/,mailto:a@x.example"], ["mailto:a@x.example"]),
        (["v=TLSRPTv1; rua=mailto:a@x.example", "v=TLSRPTv1; rua=mailto:b@x.example"], []),
        (["v=TLSRPTv2; rua=mailto:a@x.example"], []),
        ([], []),
    ],
)
def test_rua_record(records: list[str], expected: list[str]) -> None:
    assert parse_rua(records) == expected


@pytest.mark.parametrize(
    ("detail", "kind"),
    [
        ("mx.example offers no STARTTLS", "starttls-not-supported"),
        ("certificate name mismatch for mx.example", "certificate-host-mismatch"),
        ("certificate of mx.example expired", "certificate-expired"),
        ("certificate of mx.example not trusted: unable to get local issuer", "certificate-not-trusted"),
        ("certificate of mx.example does not match its TLSA records (no match)", "tlsa-invalid"),
        ("no DNSSEC-validated TLSA records for mx.example", "dane-required"),
        ("TLS handshake with mx.example failed: SSLError", "validation-failure"),
    ],
)
def test_transport_details_map_to_rfc8460_result_types(detail: str, kind: str) -> None:
    assert result_type(detail) == kind


def test_report_has_the_rfc8460_fields_and_round_trips_gzipped() -> None:
    policy = PolicyReport("sts", "x.example", ["version: STSv1", "mode: enforce"], ["mx.x.example"], 7)
    policy.failures[("certificate-expired", "mx.x.example", "192.0.2.1")] = 2
    report = build_report(
        organization="Clinic",
        contact="mailto:tlsrpt@clinic.example",
        report_id="r1",
        day=date(2026, 12, 2),
        policies=[policy],
    )
    assert report["date-range"] == {
        "start-datetime": "2026-12-02T00:00:00Z",
        "end-datetime": "2026-12-02T23:59:59Z",
    }
    [entry] = report["policies"]
    assert entry["policy"]["policy-type"] == "sts"
    assert entry["summary"] == {"total-successful-session-count": 7, "total-failure-session-count": 2}
    assert entry["failure-details"] == [
        {
            "result-type": "certificate-expired",
            "receiving-mx-hostname": "mx.x.example",
            "receiving-ip": "192.0.2.1",
            "failed-session-count": 2,
        }
    ]
    body = gzipped(report)
    assert json.loads(gzip.decompress(body)) == report
    assert parse_received(body) == report


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"organization-name": 1}',
        gzip.compress(b"{}", mtime=0)[:-4],
        json.dumps(
            {
                **build_report(
                    organization="o", contact="c", report_id="r", day=date(2026, 1, 1), policies=[]
                ),
                "date-range": {
                    "start-datetime": "2026-01-01T00:00:00",
                    "end-datetime": "2026-01-01T23:59:59Z",
                },
            }
        ).encode(),
        json.dumps(
            build_report(
                organization="o",
                contact="c",
                report_id="r",
                day=date(2026, 1, 1),
                policies=[PolicyReport("sts", "x.example", successes=2**40)],
            )
        ).encode(),
    ],
)
def test_received_documents_that_are_not_reports_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidReport):
        parse_received(body)
