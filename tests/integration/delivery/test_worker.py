"""Accept → store → queue → worker → MX over enforced TLS, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.delivery.conftest import MxFarm
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until, wait_until_async

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.config import Settings
from sealmail.delivery.pacing import idle_delay
from sealmail.messages import compose, queue
from sealmail.messages.schemas import MessageIn, message_body
from sealmail.store.tables import recipients

DOMAIN = "example.net"


@dataclass
class Pipeline:
    services: Services
    tenant: TenantFixture
    sink: SmtpSink
    dns: DnsServer
    settings: Settings

    def send(self, to: list[str], **over: Any) -> str:
        body = MessageIn.model_validate(
            {
                "from": "Clinic <noreply@clinic.example>",
                "to": to,
                "subject": "Lab results ready",
                "text": "Your results are ready.",
                "stream": "phi",
                **over,
            }
        )
        sub = compose.from_message(body, "sealmail.test", 1000)
        result, _ = self.services.messages.submit(self.tenant.principal, sub)
        return result.id

    def run_worker(self, name: str = "w1", settings: Settings | None = None) -> int:
        settings = settings or self.settings

        async def go() -> int:
            transport = build_transport(settings)
            try:
                worker = build_worker(self.services, transport, settings, name=name)
                return await worker.run_until_idle(timeout=30)
            finally:
                await transport.close()

        return asyncio.run(go())

    def message(self, mid: str) -> dict[str, Any]:
        return message_body(self.services.messages.get(self.tenant.principal, mid))

    def event_types(self, mid: str) -> list[str]:
        page = self.services.messages.list_events(self.tenant.principal, message_id=mid)
        return [e["type"] for e in sorted(page.data, key=lambda e: e["sequence"])]

    def make_due(self) -> None:
        with self.services.engine.begin() as conn:
            conn.execute(
                sa.update(recipients)
                .where(recipients.c.status == "deferred")
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )


def pipeline_settings(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm, **over: Any
) -> Settings:
    values: dict[str, Any] = {
        "outbound_mode": "mx",
        "dns_nameservers": [f"{dns.address[0]}:{dns.address[1]}"],
        "mx_port": mx.port,
        "tls_ca_file": ca.ca_file,
        "mta_sts_enabled": False,
        "smtp_hostname": "out.sealmail.test",
    }
    values.update(over)
    return make_settings(tmp_path, db_url, **values)


@pytest.fixture
def pipeline(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Pipeline]:
    sink = mx.start({"127.0.0.2": {"cert": ca.issue("mx1.example.net")}})["127.0.0.2"]
    dns.add(DOMAIN, "MX", "10 mx1.example.net.")
    dns.add("mx1.example.net", "A", "127.0.0.2")
    settings = pipeline_settings(tmp_path, db_url, dns, ca, mx)
    services = build_services(settings)
    tenant = make_tenant(services)
    yield Pipeline(services, tenant, sink, dns, settings)
    services.close()


@pytest.mark.hipaa("164.312(e)(1)")
def test_phi_message_is_delivered_over_verified_tls_with_the_attempt_recorded(pipeline: Pipeline) -> None:
    mid = pipeline.send(["patient@example.net"])
    assert pipeline.run_worker() == 1
    [received] = pipeline.sink.wait_for(1)
    assert received.tls and received.tls_version in ("TLSv1.2", "TLSv1.3")
    assert received.rcpt_tos == ("patient@example.net",)
    assert b"Subject: Lab results ready" in received.data
    assert f"X-Sealmail-Message-Id: {mid}".encode() in received.data
    msg = pipeline.message(mid)
    [rcpt] = msg["recipients"]
    assert rcpt["status"] == "delivered"
    [attempt] = rcpt["attempts"]
    assert attempt["mx_host"] == "mx1.example.net"
    assert attempt["mx_ip"] == "127.0.0.2"
    assert attempt["tls"]["verified"] is True
    assert attempt["tls"]["verified_by"] == "pkix"
    assert attempt["tls"]["version"] == received.tls_version
    assert attempt["smtp"]["code"] == 250
    assert pipeline.event_types(mid) == ["message.accepted", "message.delivered"]


def test_temporary_failure_is_retried_with_backoff_then_delivered(pipeline: Pipeline) -> None:
    mid = pipeline.send(["tempfail-once@example.net"])
    pipeline.run_worker()
    [rcpt] = pipeline.message(mid)["recipients"]
    assert rcpt["status"] == "deferred"
    next_at = datetime.fromisoformat(rcpt["next_attempt_at"])
    # First retry 5 min ± 20 % jitter.
    assert timedelta(minutes=3.9) < next_at - datetime.now(UTC) < timedelta(minutes=6.1)
    assert pipeline.run_worker() == 0  # not due yet
    pipeline.make_due()
    pipeline.run_worker()
    [rcpt] = pipeline.message(mid)["recipients"]
    assert rcpt["status"] == "delivered"
    assert [a["smtp"]["code"] for a in rcpt["attempts"]] == [451, 250]
    assert pipeline.event_types(mid) == ["message.accepted", "message.deferred", "message.delivered"]


def test_permanent_failure_bounces_with_a_classification(pipeline: Pipeline) -> None:
    mid = pipeline.send(["permfail-550@example.net", "patient@example.net"])
    pipeline.run_worker()
    by_email = {r["email"]: r for r in pipeline.message(mid)["recipients"]}
    assert by_email["permfail-550@example.net"]["status"] == "bounced"
    assert by_email["patient@example.net"]["status"] == "delivered"
    events = pipeline.services.messages.list_events(
        pipeline.tenant.principal, message_id=mid, type_="message.bounced"
    ).data
    [bounce] = events
    assert bounce["data"]["bounce"]["classification"] == "invalid_recipient"
    assert bounce["data"]["smtp"]["enhanced"] == "5.1.1"


def test_recipients_of_one_domain_share_one_transaction_without_signed_return_paths(
    pipeline: Pipeline,
) -> None:
    pipeline.send(["a@example.net", "b@example.net", "c@example.net"])
    pipeline.run_worker(settings=pipeline.settings.model_copy(update={"verp_enabled": False}))
    [received] = pipeline.sink.wait_for(1)
    assert sorted(received.rcpt_tos) == ["a@example.net", "b@example.net", "c@example.net"]
    assert received.mail_from == "noreply@clinic.example"


def test_without_a_bounce_listener_the_senders_own_return_path_is_kept(pipeline: Pipeline) -> None:
    # VERP is on by default, but until bounces can arrive somewhere a rewritten return
    # path would lose them: the sender keeps receiving its own.
    assert pipeline.settings.verp_enabled and pipeline.settings.smtp_inbound_port is None
    pipeline.send(["a@example.net", "b@example.net"])
    pipeline.run_worker()
    [received] = pipeline.sink.wait_for(1)
    assert received.mail_from == "noreply@clinic.example"


def test_with_signed_return_paths_each_recipient_gets_its_own_transaction(pipeline: Pipeline) -> None:
    pipeline.send(["a@example.net", "b@example.net"])
    pipeline.run_worker(settings=pipeline.settings.model_copy(update={"smtp_inbound_port": 25}))
    received = pipeline.sink.wait_for(2)
    assert sorted(m.rcpt_tos for m in received) == [("a@example.net",), ("b@example.net",)]
    assert all(m.mail_from.startswith("b+rcp_") for m in received)
    assert all(m.mail_from.endswith("@bounces.clinic.example") for m in received)


@pytest.mark.hipaa("164.312(e)(1)")
def test_destination_without_starttls_gets_a_phi_free_portal_notice_never_the_message(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    import hashlib
    import re

    from sealmail.store.tables import portal_messages

    sink = mx.start({"127.0.0.3": {}})["127.0.0.3"]  # no certificate: STARTTLS not offered
    dns.add("plain.example", "MX", "10 mx.plain.example.")
    dns.add("mx.plain.example", "A", "127.0.0.3")
    settings = pipeline_settings(tmp_path, db_url, dns, ca, mx)
    services = build_services(settings)
    try:
        p = Pipeline(services, make_tenant(services), sink, dns, settings)
        mid = p.send(["patient@plain.example"])
        p.run_worker()
        [rcpt] = p.message(mid)["recipients"]
        assert rcpt["status"] == "delivered"
        got = services.messages.list_events(p.tenant.principal, message_id=mid, type_="message.delivered")
        secureline = got.data[0]["data"]["secureline"]
        assert secureline["method"] == "portal"
        assert "STARTTLS" in secureline["reason"]
        [notice] = sink.wait_for(1)
        assert not notice.tls
        assert b"Lab results" not in notice.data and b"Your results are ready" not in notice.data
        assert b"sent you a secure message" in notice.data
        token = re.search(rb"/p/([A-Za-z0-9_-]{40,})", notice.data)
        assert token, notice.data
        with services.engine.connect() as conn:
            stored = conn.execute(sa.select(portal_messages.c.token_hash)).scalar_one()
        assert stored == hashlib.sha256(token.group(1)).hexdigest()
        assert token.group(1).decode() not in str(stored)
    finally:
        services.close()


@pytest.mark.hipaa("164.312(e)(1)")
def test_with_the_portal_forbidden_phi_waits_or_fails_but_is_never_sent_plaintext(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    sink = mx.start({"127.0.0.3": {}})["127.0.0.3"]
    dns.add("plain.example", "MX", "10 mx.plain.example.")
    dns.add("mx.plain.example", "A", "127.0.0.3")
    settings = pipeline_settings(tmp_path, db_url, dns, ca, mx)
    services = build_services(settings)
    try:
        p = Pipeline(services, make_tenant(services), sink, dns, settings)
        services.tenancy.update_settings(p.tenant.id, {"secureline": {"forbidden": ["portal"]}}, actor="test")
        mid = p.send(["patient@plain.example"])
        p.run_worker()
        [rcpt] = p.message(mid)["recipients"]
        assert rcpt["status"] == "deferred"
        assert rcpt["last_reason"] == "tls_required"
        assert sink.messages == []
        # Policy "fail" turns the same situation into an immediate bounce, still unsent.
        strict = settings.model_copy(update={"on_tls_unavailable": "fail"})
        p.make_due()
        p.run_worker(settings=strict)
        [rcpt] = p.message(mid)["recipients"]
        assert rcpt["status"] == "bounced" and rcpt["last_reason"] == "tls_required"
        assert sink.messages == []
        # The broadcast stream's opportunistic policy may use plaintext here.
        mid2 = p.send(["patient@plain.example"], stream="broadcast")
        p.run_worker()
        assert p.message(mid2)["recipients"][0]["status"] == "delivered"
        assert len(sink.wait_for(1)) == 1 and not sink.messages[0].tls
    finally:
        services.close()


def test_deferral_past_the_lifetime_expires(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    sink = mx.start({"127.0.0.2": {"cert": ca.issue("mx1.example.net")}})["127.0.0.2"]
    dns.add(DOMAIN, "MX", "10 mx1.example.net.")
    dns.add("mx1.example.net", "A", "127.0.0.2")
    settings = pipeline_settings(tmp_path, db_url, dns, ca, mx, retry_max_age_seconds=60)
    services = build_services(settings)
    try:
        p = Pipeline(services, make_tenant(services), sink, dns, settings)
        mid = p.send(["tempfail-451@example.net"])
        p.run_worker()
        [rcpt] = p.message(mid)["recipients"]
        assert rcpt["status"] == "expired"
        assert p.event_types(mid) == ["message.accepted", "message.expired"]
    finally:
        services.close()


def test_two_workers_never_deliver_the_same_recipient_twice(pipeline: Pipeline) -> None:
    ids = [pipeline.send([f"p{i}@example.net"]) for i in range(40)]

    async def both() -> None:
        settings = pipeline.settings.model_copy(update={"worker_batch_size": 5})
        transports = [build_transport(settings), build_transport(settings)]
        workers = [
            build_worker(pipeline.services, t, settings, name=f"w{i}") for i, t in enumerate(transports)
        ]
        try:
            await asyncio.gather(*(w.run_until_idle(timeout=60) for w in workers))
        finally:
            for t in transports:
                await t.close()

    asyncio.run(both())
    received = pipeline.sink.wait_for(40)
    rcpts = [r for m in received for r in m.rcpt_tos]
    assert sorted(rcpts) == sorted(f"p{i}@example.net" for i in range(40))
    assert len(received) == 40
    for mid in ids:
        [rcpt] = pipeline.message(mid)["recipients"]
        assert rcpt["status"] == "delivered" and len(rcpt["attempts"]) == 1


def test_an_expired_lease_is_reclaimed(pipeline: Pipeline) -> None:
    mid = pipeline.send(["patient@example.net"])
    [claimed] = queue.claim(pipeline.services.engine, "crashed-worker", 10, lease_seconds=300)
    assert claimed.message_id == mid
    assert pipeline.run_worker() == 0  # leased to someone else: not touched
    with pipeline.services.engine.begin() as conn:
        conn.execute(sa.update(recipients).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert pipeline.run_worker() == 1
    assert pipeline.message(mid)["recipients"][0]["status"] == "delivered"


def test_worker_killed_mid_delivery_loses_nothing(
    pipeline: Pipeline, tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    """SIGKILL a real worker process while the MX holds DATA; another worker delivers later."""
    mid = pipeline.send(["hold@example.net"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    env.update(
        {
            "SEALMAIL_HOME": str(tmp_path),
            "SEALMAIL_DATABASE_URL": db_url,
            "SEALMAIL_OUTBOUND_MODE": "mx",
            "SEALMAIL_DNS_NAMESERVERS": f'["{dns.address[0]}:{dns.address[1]}"]',
            "SEALMAIL_MX_PORT": str(mx.port),
            "SEALMAIL_TLS_CA_FILE": ca.ca_file,
            "SEALMAIL_MTA_STS_ENABLED": "false",
            "SEALMAIL_LEASE_SECONDS": "5",
            "SEALMAIL_LOG_LEVEL": "warning",
            "SEALMAIL_CONFIG": "/nonexistent.toml",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealmail.cli", "serve", "--role", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # A cold interpreter importing the whole product can take a while on a loaded
        # 2-core machine; the budget is generous, the failure message shows why.
        if not pipeline.sink.data_started.wait(90):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"worker process never reached DATA; its stderr:\n{err.decode()[-3000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    pipeline.sink.release()
    [rcpt] = pipeline.message(mid)["recipients"]
    assert rcpt["status"] == "delivering"  # leased by the dead worker
    assert pipeline.sink.messages == []

    def delivered() -> bool:
        pipeline.run_worker(name="rescuer")
        return pipeline.message(mid)["recipients"][0]["status"] == "delivered"

    wait_until(delivered, timeout=20, message="recipient was not redelivered after lease expiry")
    assert len(pipeline.sink.wait_for(1)) == 1


def test_bounce_sends_a_headers_only_dsn_from_the_null_sender(pipeline: Pipeline) -> None:
    from email import message_from_bytes

    from sealmail.messages.dsn import DsnSender

    pipeline.dns.add("clinic.example", "MX", "10 mx1.example.net.")
    mid = pipeline.send(["permfail-550@example.net"], subject="HIV test result for Jane Roe")

    async def go() -> None:
        transport = build_transport(pipeline.settings)
        try:
            worker = build_worker(pipeline.services, transport, name="w-dsn")
            worker.dsn = DsnSender(pipeline.services.messages, "out.sealmail.test")
            await worker.run_until_idle(timeout=30)
            await worker.run_until_idle(timeout=30)  # delivers the DSN itself
        finally:
            await transport.close()

    asyncio.run(go())
    [dsn] = pipeline.sink.wait_for(1)
    assert dsn.mail_from in ("", "<>")  # aiosmtpd reports the null reverse-path as "<>"
    assert dsn.rcpt_tos == ("noreply@clinic.example",)
    parsed = message_from_bytes(dsn.data)
    assert parsed.get_content_type() == "multipart/report"
    assert b"5.1.1" in dsn.data
    assert b"HIV" not in dsn.data and b"Jane Roe" not in dsn.data
    assert b"Your results are ready" not in dsn.data
    assert pipeline.message(mid)["recipients"][0]["status"] == "bounced"


def test_failing_destination_trips_the_circuit_breaker(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    from sealmail.store.tables import destinations

    sink = mx.start({"127.0.0.2": {"cert": ca.issue("mx1.example.net")}})["127.0.0.2"]
    dns.add("down.example", "MX", "10 mx.down.example.")
    dns.add("mx.down.example", "A", "127.0.0.250")  # nothing listens: connection refused
    settings = pipeline_settings(tmp_path, db_url, dns, ca, mx, circuit_breaker_failures=2)
    services = build_services(settings)
    try:
        p = Pipeline(services, make_tenant(services), sink, dns, settings)
        mid = p.send(["patient@down.example"])
        assert p.run_worker() == 1
        p.make_due()
        assert p.run_worker() == 1
        with services.engine.connect() as conn:
            row = conn.execute(sa.select(destinations).where(destinations.c.domain == "down.example")).one()
        assert row.consecutive_failures == 2
        assert row.suspended_until is not None and row.suspended_until > datetime.now(UTC)
        p.make_due()
        assert p.run_worker() == 0  # suspended: no attempt is burnt
        [rcpt] = p.message(mid)["recipients"]
        assert rcpt["status"] == "deferred" and rcpt["attempt_count"] == 2
        assert rcpt["last_reason"] == "connection_failed"
    finally:
        services.close()


def test_scheduled_message_waits_for_send_at(pipeline: Pipeline) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    mid = pipeline.send(["patient@example.net"], send_at=later)
    assert pipeline.run_worker() == 0
    assert pipeline.message(mid)["recipients"][0]["status"] == "queued"
    with pipeline.services.engine.begin() as conn:
        conn.execute(sa.update(recipients).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert pipeline.run_worker() == 1


def test_running_workers_claim_in_their_record_transaction_and_lose_or_repeat_nobody(
    pipeline: Pipeline,
) -> None:
    """``Worker.run``: a flush records outcomes and claims the next recipients in one transaction."""
    ids = [pipeline.send([f"r{i}@example.net"]) for i in range(30)]
    transactions: list[list[str]] = []
    open_: dict[int, list[str]] = {}

    def statement(conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        open_.setdefault(id(conn), []).append(" ".join(sql.split()))

    def commit(conn: Any) -> None:
        transactions.append(open_.pop(id(conn), []))

    engine = pipeline.services.engine
    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)

    async def two() -> None:
        settings = pipeline.settings.model_copy(update={"worker_batch_size": 4, "worker_concurrency": 2})
        transports = [build_transport(settings), build_transport(settings)]
        workers = [
            build_worker(pipeline.services, t, settings, name=f"w{i}") for i, t in enumerate(transports)
        ]
        stop = asyncio.Event()
        runs = [asyncio.create_task(w.run(stop)) for w in workers]
        try:
            await wait_until_async(lambda: sum(w.delivered for w in workers) >= 30, 30, "30 deliveries")
        finally:
            stop.set()
            await asyncio.gather(*runs)
            for t in transports:
                await t.close()

    try:
        asyncio.run(two())
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)
    received = pipeline.sink.wait_for(30)
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(f"r{i}@example.net" for i in range(30))
    for mid in ids:
        [rcpt] = pipeline.message(mid)["recipients"]
        assert rcpt["status"] == "delivered" and len(rcpt["attempts"]) == 1
    shared = [
        t
        for t in transactions
        # The record's lease-checked UPDATE (attempts and events go by COPY on PostgreSQL,
        # which SQLAlchemy's statement events do not see; there the UPDATE is one statement
        # that locks the held leases in a WITH first) beside the claim's.
        if any("UPDATE recipients" in s and "last_reason" in s for s in t)
        and any(
            s.startswith("UPDATE recipients SET status") and "RETURNING" in s and "last_reason" not in s
            for s in t
        )
    ]
    assert shared, "no flush claimed in its record transaction"


def test_an_idle_worker_polls_ever_more_slowly_and_still_delivers_what_arrives(pipeline: Pipeline) -> None:
    """Idle back-off (issue 18): empty claims double the wait, up to 8 × the poll interval."""
    assert [idle_delay(0.2, n) for n in range(6)] == [0.2, 0.2, 0.4, 0.8, 1.6, 1.6]
    claims: list[float] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.startswith("UPDATE recipients SET status") and "RETURNING" in sql:
            claims.append(time.monotonic())

    engine = pipeline.services.engine
    sa.event.listen(engine, "before_cursor_execute", statement)

    async def idle_then_one() -> None:
        settings = pipeline.settings.model_copy(update={"worker_poll_seconds": 0.02})
        transport = build_transport(settings)
        worker = build_worker(pipeline.services, transport, settings, name="idle")
        stop = asyncio.Event()
        run = asyncio.create_task(worker.run(stop))
        try:
            await wait_until_async(lambda: len(claims) >= 5, 5, "five empty claims")
            # Four waits after empty claims: 0.02 + 0.04 + 0.08 + 0.16 s at least (0.08 without back-off).
            assert claims[4] - claims[0] >= 0.3
            await asyncio.to_thread(pipeline.send, ["late@example.net"])
            await wait_until_async(lambda: worker.delivered >= 1, 10, "the late message delivered")
            assert worker.delivered == 1
        finally:
            stop.set()
            await run
            await transport.close()

    try:
        asyncio.run(idle_then_one())
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
    assert [r for m in pipeline.sink.wait_for(1) for r in m.rcpt_tos] == ["late@example.net"]
