"""The worker's daily TLS-report run (RFC 8460): claimed once per UTC day across processes.

Real deliveries to loopback MX sinks record the day's TLS facts; two schedulers (two "hosts")
tick at once against the same database (SQLite and PostgreSQL) and only one sends; the https
report reaches a loopback HTTPS receiver, the mailto one goes through the normal queue and the
real worker, DKIM-signed (checked with dkimpy).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

import dkim as dkimpy
import pytest
from dns import nameserver as dns_nameserver
from dns import resolver as dns_resolver
from tests.integration.delivery.conftest import MxFarm, ca, dns, mx  # noqa: F401 — fixtures
from tests.integration.tlsrpt.test_tlsrpt_sending import (  # noqa: F401 — fixtures
    DOMAIN,
    REPORTS_HOST,
    _deliver_to_both,
    _run_worker,
    receiver,
    services,
    settings,
    sinks,
)
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer, Route
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until, wait_until_async

from sealmail.app import Services, build_tlsrpt_scheduler, build_tlsrpt_sender
from sealmail.config import Settings
from sealmail.runtime import serve
from sealmail.tlsrpt.scheduler import LEASE, RETRY_AFTER, DailyRuns, TlsReportScheduler, run_tlsrpt_scheduler

pytest.importorskip("nacl", reason="dkimpy verifies ed25519 only with PyNaCl")

# The schedulers run "tomorrow" at 01:00: today's report is due, and the retries an hour or two
# later stay on that day (now + 1 day crossed midnight when the suite ran after 22:59 UTC).
TOMORROW = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(1, 0), UTC)


def _world(services: Services, dns: DnsServer, receiver: HttpsServer, settings: Settings) -> None:  # noqa: F811 — the fixtures' values
    """A tenant whose mail today met TLS at example.net (mailto reports) and failed it at
    partner.example (https reports)."""
    dns.add("_smtp._tls.example.net", "TXT", '"v=TLSRPTv1; rua=mailto:tls-reports@example.net"')
    dns.add(
        "_smtp._tls.partner.example", "TXT", f'"v=TLSRPTv1;rua=https://{REPORTS_HOST}:{receiver.port}/tlsrpt"'
    )
    _deliver_to_both(services, settings, dns)


def _scheduler(svc: Services, owner: str, now: datetime) -> TlsReportScheduler:
    scheduler = build_tlsrpt_scheduler(svc, owner)
    scheduler.clock = lambda: now
    return scheduler


def test_two_hosts_tick_at_once_and_the_day_is_sent_once_through_the_queue(
    services: Services,  # noqa: F811
    settings: Settings,  # noqa: F811
    dns: DnsServer,  # noqa: F811
    sinks: dict[str, SmtpSink],  # noqa: F811
    receiver: HttpsServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _world(services, dns, receiver, settings)
    host_a = _scheduler(services, "host-a:1", TOMORROW)
    host_b = _scheduler(services, "host-b:2", TOMORROW)

    async def both() -> list[object]:
        return list(await asyncio.gather(host_a.tick(), host_b.tick()))

    results = asyncio.run(both())
    ran = [r for r in results if r is not None]
    assert len(ran) == 1, results
    assert (ran[0].sent, ran[0].failed, ran[0].finished) == (2, 0, True)  # type: ignore[attr-defined]
    assert len(receiver.posts) == 1

    # Later ticks the same day, on either host, send nothing again.
    assert asyncio.run(host_a.tick()) is None
    assert asyncio.run(host_b.tick()) is None
    assert len(receiver.posts) == 1
    row = DailyRuns(services.engine).get(datetime.now(UTC).date())
    assert row is not None and row["finished_at"] is not None and row["sent"] == 2

    # The mailto report is the tenant's own mail in the normal queue: the worker delivers it,
    # DKIM-signed with the tenant's domain key.
    _run_worker(services, settings)
    wait_until(lambda: len(sinks["127.0.0.2"].messages) == 2, 10, "the report mail did not arrive")
    data = sinks["127.0.0.2"].messages[1].data
    assert b"TLS-Report-Domain: example.net" in data
    resolver = dns_resolver.Resolver(configure=False)
    resolver.nameservers = [dns_nameserver.Do53Nameserver(*dns.address)]
    monkeypatch.setattr(dns_resolver, "default_resolver", resolver)
    assert dkimpy.verify(data, minkey=2048)


def test_a_failed_endpoint_is_retried_later_and_a_dead_claim_is_taken_over(
    services: Services,  # noqa: F811
    settings: Settings,  # noqa: F811
    dns: DnsServer,  # noqa: F811
    sinks: dict[str, SmtpSink],  # noqa: F811
    receiver: HttpsServer,  # noqa: F811
) -> None:
    _world(services, dns, receiver, settings)
    receiver.set_route("/tlsrpt", Route(503))
    first = asyncio.run(_scheduler(services, "host-a:1", TOMORROW).tick())
    assert first is not None and (first.sent, first.failed, first.finished) == (1, 1, False)

    # Released for a retry an hour later: not before.
    assert asyncio.run(_scheduler(services, "host-b:2", TOMORROW + timedelta(minutes=5)).tick()) is None
    receiver.set_route("/tlsrpt", Route(202))
    retry = asyncio.run(
        _scheduler(services, "host-b:2", TOMORROW + RETRY_AFTER + timedelta(minutes=1)).tick()
    )
    assert retry is not None and (retry.sent, retry.failed, retry.finished) == (1, 0, True)
    assert len(receiver.posts) == 2  # the failed POST and its retry; the mailto report went once

    # A process that died holding a claim: the day is taken over once its lease ran out.
    runs = DailyRuns(services.engine)
    day = datetime.now(UTC).date() + timedelta(days=5)
    now = datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1, hours=1)
    assert runs.claim(day, "dead:1", now)
    assert not runs.claim(day, "host-a:1", now + timedelta(minutes=30))
    assert runs.claim(day, "host-a:1", now + LEASE + timedelta(seconds=1))
    assert not runs.claim(day, "host-b:2", now + LEASE + timedelta(seconds=2))


def test_the_worker_loop_sends_on_its_own(
    services: Services,  # noqa: F811
    settings: Settings,  # noqa: F811
    dns: DnsServer,  # noqa: F811
    sinks: dict[str, SmtpSink],  # noqa: F811
    receiver: HttpsServer,  # noqa: F811
) -> None:
    _world(services, dns, receiver, settings)
    scheduler = TlsReportScheduler(
        DailyRuns(services.engine), build_tlsrpt_sender(services), "w", lambda: TOMORROW
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(run_tlsrpt_scheduler(scheduler, stop, 0.05))
        try:
            await wait_until_async(lambda: len(receiver.posts) == 1, 20, "one report posted")
        finally:
            stop.set()
            await loop

    asyncio.run(run())
    assert DailyRuns(services.engine).get(datetime.now(UTC).date()) is not None


def test_the_worker_role_runs_the_scheduler(services: Services) -> None:  # noqa: F811
    """``serve --role worker`` claims the previous UTC day by itself (nothing to report here)."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()

    async def run() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(serve(services, ["worker"], stop=stop, ready=ready))
        try:
            await asyncio.wait_for(ready.wait(), 20)
            await wait_until_async(
                lambda: DailyRuns(services.engine).get(yesterday) is not None, 20, "the day claimed"
            )
        finally:
            stop.set()
            await serving

    asyncio.run(run())
    row = DailyRuns(services.engine).get(yesterday)
    assert row is not None and row["finished_at"] is not None and row["sent"] == 0
