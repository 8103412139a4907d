"""TLS-RPT end to end (RFC 8460): real deliveries record TLS facts, the daily job finds the
``_smtp._tls`` record on a loopback DNS server, POSTs the gzip'd JSON to a loopback HTTPS
receiver and queues the mail form, which the real worker delivers DKIM-signed; dkimpy (an
independent implementation) verifies the signature.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest
from dns import nameserver as dns_nameserver
from dns import resolver as dns_resolver
from tests.integration.delivery.conftest import MxFarm, ca, dns, mx, mx_settings  # noqa: F401 — fixtures
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer, Route
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

from sealmail.app import Services, build_services, build_tlsrpt_sender, build_transport, build_worker
from sealmail.config import Settings
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.tlsrpt.report import MAX_REPORT_URIS, RESULT_TYPES, parse_received

pytest.importorskip("nacl", reason="dkimpy verifies ed25519 only with PyNaCl")

DOMAIN = "clinic.example"
REPORTS_HOST = "reports.partner.example"


@pytest.fixture
def sinks(dns: DnsServer, mx: MxFarm, ca: TestCA) -> dict[str, SmtpSink]:  # noqa: F811
    started = mx.start(
        {
            "127.0.0.2": {"cert": ca.issue("mx.example.net")},
            # An expired certificate: a verified-TLS delivery must fail there.
            "127.0.0.3": {"cert": ca.issue_expired("mx.partner.example")},
        }
    )
    for domain, host, ip in (
        ("example.net", "mx.example.net", "127.0.0.2"),
        ("partner.example", "mx.partner.example", "127.0.0.3"),
    ):
        dns.add(domain, "MX", f"10 {host}.")
        dns.add(host, "A", ip)
    return started


@pytest.fixture
def receiver(ca: TestCA, dns: DnsServer) -> Iterator[HttpsServer]:  # noqa: F811
    with HttpsServer(ca.issue(REPORTS_HOST)) as web:
        web.set_route("/tlsrpt", Route(202))
        dns.add(REPORTS_HOST, "A", "127.0.0.1")
        yield web


@pytest.fixture
def settings(
    tmp_path: Path,
    db_url: str,
    dns: DnsServer,  # noqa: F811
    mx: MxFarm,  # noqa: F811
    ca: TestCA,  # noqa: F811
    sinks: dict[str, SmtpSink],
) -> Settings:
    return mx_settings(tmp_path, db_url, dns, mx, ca)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.close()


def _run_worker(services: Services, settings: Settings) -> None:
    async def go() -> None:
        transport = build_transport(settings)
        try:
            await build_worker(services, transport, settings).run_until_idle(timeout=30)
        finally:
            await transport.close()

    asyncio.run(go())


def _send(services: Services, api_key: str, to: str, tls: TlsPolicy | None = None) -> None:
    body = MessageIn.model_validate(
        {
            "from": f"front@{DOMAIN}",
            "to": [to],
            "subject": "Hello",
            "text": "Hi.",
            "tls_policy": tls,
            "stream": "transactional",
        }
    )
    principal = services.tenancy.authenticate(api_key)
    services.messages.submit(principal, compose.from_message(body, DOMAIN, 1000))


def _deliver_to_both(services: Services, settings: Settings, dns: DnsServer) -> None:  # noqa: F811
    """A tenant sends to example.net (delivered) and to partner.example (fails verified TLS)."""
    tenant_id = services.tenancy.create_tenant("Clinic", actor="test")
    setup = services.sender_domains.add(tenant_id, DOMAIN, "test", verified=True)
    for record in setup.records:
        if record.type == "TXT":
            dns.add(record.name, "TXT", record.zone_value)
    _, key = services.tenancy.create_api_key(tenant_id, "t", ["send", "admin"], actor="test")
    # No portal fallback: the failed verified-TLS attempt is what stays on record.
    services.tenancy.update_settings(tenant_id, {"secureline": {"forbidden": ["portal"]}}, actor="test")
    _send(services, key, "pat@example.net")
    _send(services, key, "bob@partner.example", TlsPolicy.REQUIRE_VERIFIED)
    _run_worker(services, settings)


def _assert_rfc8460(report: dict[str, Any]) -> None:
    """The fields RFC 8460 §4.4 requires, with their types."""
    assert parse_received(json.dumps(report).encode()) == report
    assert report["date-range"]["start-datetime"].endswith("T00:00:00Z")
    assert report["date-range"]["end-datetime"].endswith("T23:59:59Z")
    for entry in report["policies"]:
        for detail in entry.get("failure-details", []):
            assert detail["result-type"] in RESULT_TYPES
            assert isinstance(detail["failed-session-count"], int)


def test_daily_reports_reach_https_and_mailto_endpoints(
    services: Services,
    settings: Settings,
    dns: DnsServer,  # noqa: F811
    sinks: dict[str, SmtpSink],
    receiver: HttpsServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dns.add("_smtp._tls.example.net", "TXT", '"v=TLSRPTv1; rua=mailto:tls-reports@example.net"')
    dns.add(
        "_smtp._tls.partner.example", "TXT", f'"v=TLSRPTv1;rua=https://{REPORTS_HOST}:{receiver.port}/tlsrpt"'
    )
    _deliver_to_both(services, settings, dns)
    assert len(sinks["127.0.0.2"].messages) == 1
    assert sinks["127.0.0.3"].messages == []

    today = datetime.now(UTC).date()
    sender = build_tlsrpt_sender(services)
    results = asyncio.run(sender.run(today))
    assert sorted((r.policy_domain, r.ok) for r in results) == [
        ("example.net", True),
        ("partner.example", True),
    ]

    # https: one POST of gzip'd JSON (RFC 8460 §5.4).
    [(path, headers, body)] = receiver.posts
    assert path == "/tlsrpt"
    assert headers["content-type"] == "application/tlsrpt+gzip"
    posted = json.loads(gzip.decompress(body))
    _assert_rfc8460(posted)
    [entry] = posted["policies"]
    assert entry["policy"] == {"policy-type": "no-policy-found", "policy-domain": "partner.example"}
    assert entry["summary"]["total-failure-session-count"] >= 1
    assert {d["result-type"] for d in entry["failure-details"]} == {"certificate-expired"}
    assert {d["receiving-mx-hostname"] for d in entry["failure-details"]} == {"mx.partner.example"}
    assert {d["receiving-ip"] for d in entry["failure-details"]} == {"127.0.0.3"}
    assert posted["contact-info"] == f"mailto:tlsrpt@{DOMAIN}"

    # mailto: the queued report goes out through the worker, DKIM-signed by the tenant's key.
    _run_worker(services, settings)
    wait_until(lambda: len(sinks["127.0.0.2"].messages) == 2, 10, "the report mail did not arrive")
    data = sinks["127.0.0.2"].messages[1].data
    resolver = dns_resolver.Resolver(configure=False)
    resolver.nameservers = [dns_nameserver.Do53Nameserver(*dns.address)]
    monkeypatch.setattr(dns_resolver, "default_resolver", resolver)
    assert dkimpy.verify(data, minkey=2048), "the report's DKIM signature does not verify"
    mail = email.message_from_bytes(data, policy=email.policy.default)
    assert mail.get_content_type() == "multipart/report"
    assert mail.get_param("report-type") == "tlsrpt"
    assert mail["TLS-Report-Domain"] == "example.net"
    assert mail["TLS-Report-Submitter"] == DOMAIN
    [attachment] = [p for p in mail.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert str(attachment.get_filename()).startswith(f"{DOMAIN}!example.net!")
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    mailed = json.loads(gzip.decompress(payload))
    _assert_rfc8460(mailed)
    assert mailed["policies"][0]["summary"] == {
        "total-successful-session-count": 1,
        "total-failure-session-count": 0,
    }

    # A second run the same day sends nothing again.
    assert asyncio.run(sender.run(today)) == []
    assert len(receiver.posts) == 1


@pytest.mark.usefixtures("sinks")
def test_a_hostile_report_record_neither_stops_the_run_nor_fans_out(
    services: Services,
    settings: Settings,
    dns: DnsServer,  # noqa: F811
    receiver: HttpsServer,
) -> None:
    # The _smtp._tls record is the recipient domain's to write.  A mailto: URI with a line
    # break (TXT carries any bytes) made the report mail's To header raise outside the
    # per-URI error handling, ending the whole run for every tenant and domain after it; and
    # a record listing hundreds of URIs had reports sent (by the tenant's domain) to each.
    dns.add(
        "_smtp._tls.example.net", "TXT", '"v=TLSRPTv1; rua=mailto:a@example.net\\013\\010Bcc: b@example.org"'
    )
    # One TXT string holds 255 bytes: the URIs go in strings of their own, joined on lookup.
    uris = [f"https://{REPORTS_HOST}:{receiver.port}/tlsrpt?n={n}" for n in range(40)]
    dns.add("_smtp._tls.partner.example", "TXT", " ".join(['"v=TLSRPTv1;rua="', *(f'"{u},"' for u in uris)]))
    _deliver_to_both(services, settings, dns)

    results = asyncio.run(build_tlsrpt_sender(services).run(datetime.now(UTC).date()))

    assert {r.policy_domain for r in results} == {"partner.example"}
    assert all(r.ok for r in results)
    assert len(receiver.posts) == len(results) == MAX_REPORT_URIS
