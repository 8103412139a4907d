"""The webhook dispatcher: fan events out, claim due deliveries, sign, send, record.

Runs inside worker processes (``run_dispatcher``); any number of them may run at once,
because deliveries are claimed under leases.  Each attempt is one POST through the
SSRF-safe client (15 s for the whole exchange, redirects never followed), signed per the
Standard Webhooks spec with every live secret of the endpoint.

``now`` is the scheduling clock (due times, leases, backoff) and can be driven by tests;
the ``webhook-timestamp`` header always carries the real time of the attempt, because
receivers check it against their own clock to reject replays.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.net.http_client import FetchError, SafeHttpClient
from sealmail.store import db
from sealmail.webhooks import outbox, payload, policy, signing
from sealmail.webhooks.endpoints import WebhookEndpoints, carries_phi

log = structlog.get_logger("sealmail.webhooks")

Notifier = Callable[[str, str, str, str], object]


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    batch: int = 100  # deliveries claimed per pass
    concurrency: int = 20  # requests in flight per process
    lease: timedelta = timedelta(seconds=60)  # > timeout, so a live attempt keeps its lease
    lookback: timedelta = timedelta(minutes=5)  # see outbox: late-committing events
    timeout: float = 15.0
    max_response_bytes: int = 64 * 1024  # the body is ignored; do not buffer much of it
    poll_seconds: float = 1.0
    disable: policy.DisablePolicy = field(default_factory=policy.DisablePolicy)


@dataclass(frozen=True, slots=True)
class TestResult:
    delivery_id: str
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def _worker_name() -> str:
    return f"wh:{socket.gethostname()[:50]}:{os.getpid()}:{secrets.token_hex(3)}"


class Dispatcher:
    def __init__(
        self,
        engine: Any,
        endpoints: WebhookEndpoints,
        https_client: SafeHttpClient,
        http_client: SafeHttpClient | None = None,
        *,
        notifier: Notifier | None = None,
        config: DispatcherConfig | None = None,
        rand: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.endpoints = endpoints
        self.https_client = https_client
        self.http_client = http_client
        self.notifier = notifier
        self.config = config or DispatcherConfig()
        self.rand = rand or secrets.SystemRandom().random  # jitter, not cryptography
        self.clock = clock
        self.worker = _worker_name()

    # -- passes ------------------------------------------------------------------------------
    async def dispatch_once(self, now: datetime | None = None) -> int:
        """One pass: fan out new events, then send what is due; returns attempts made."""
        now = now or datetime.now(UTC)
        cfg = self.config
        await asyncio.to_thread(outbox.fan_out, self.engine, now, cfg.lookback)
        claimed = await asyncio.to_thread(outbox.claim, self.engine, self.worker, now, cfg.batch, cfg.lease)
        if not claimed:
            return 0
        eps, evs = await asyncio.to_thread(outbox.load_for_sending, self.engine, claimed)
        gate = asyncio.Semaphore(cfg.concurrency)

        async def one(c: outbox.Claimed) -> None:
            async with gate:
                try:
                    await self._deliver(c, eps.get(c.endpoint_id), evs.get(c.event_id), now)
                except Exception:  # one bad delivery must not stop the pass; its lease expires
                    log.exception("webhook.delivery_crashed", delivery_id=c.id)

        await asyncio.gather(*(one(c) for c in claimed))
        return len(claimed)

    async def send_test(self, tenant_id: str, endpoint_id: str, actor: str) -> TestResult:
        """Send a ``webhook.test`` event now, once, and report what the receiver said."""
        now = datetime.now(UTC)

        def prepare() -> tuple[outbox.Claimed, Any]:
            with db.write(self.engine) as conn:
                delivery_id = self.endpoints.new_test_delivery(conn, tenant_id, endpoint_id, now)
                claimed = outbox.lease_one(conn, delivery_id, self.worker, now, self.config.lease)
                audit.append(
                    conn,
                    action=AuditAction.WEBHOOK_ENDPOINT_TESTED,
                    actor=actor,
                    tenant_id=tenant_id,
                    target=endpoint_id,
                    details={"delivery_id": delivery_id},
                )
            return claimed, self.endpoints.row(tenant_id, endpoint_id)

        claimed, ep = await asyncio.to_thread(prepare)
        result = await self._deliver(claimed, ep, None, now, one_shot=True)
        assert result is not None  # a test delivery always has its endpoint and body
        return TestResult(
            claimed.id,
            result.decision.outcome is policy.DeliveryVerdict.DELIVERED,
            result.status_code,
            result.decision.error,
            result.duration_ms,
        )

    # -- one delivery ------------------------------------------------------------------------
    async def _deliver(
        self, c: outbox.Claimed, ep: Any, event: Any, now: datetime, *, one_shot: bool = False
    ) -> outbox.Result | None:
        if ep is None:
            return None  # the endpoint was deleted along with its deliveries
        if c.event_type == payload.TEST_EVENT_TYPE:
            body = payload.render_test(c.endpoint_id, c.id, now)
        elif event is None:
            await asyncio.to_thread(
                outbox.drop, self.engine, self.worker, c, "the event no longer exists", now
            )
            return None
        else:
            row, message = event
            body = payload.render(row, message, ep.payload)
        live = await asyncio.to_thread(self.endpoints.live_secrets, ep, now)
        started = datetime.now(UTC)
        status, error, retry_after, duration_ms = await self._post(ep, c.webhook_id, body, live)
        decision = policy.decide(
            attempts_made=c.attempts + 1,
            status=status,
            error=error,
            retry_after=retry_after,
            now=now,
            rand=self.rand,
        )
        if one_shot and decision.outcome is policy.DeliveryVerdict.RETRY:
            decision = policy.Decision(policy.DeliveryVerdict.FAILED, error=decision.error)
        result = outbox.Result(c, decision, status, duration_ms, started)
        reason = await asyncio.to_thread(
            outbox.record, self.engine, self.worker, result, now, self.config.disable
        )
        log.info(
            "webhook.attempt",
            delivery_id=c.id,
            endpoint_id=c.endpoint_id,
            outcome=str(decision.outcome),
            status_code=status,
        )
        if reason is not None:
            log.warning("webhook.endpoint_disabled", endpoint_id=c.endpoint_id, reason=reason)
            if self.notifier is not None:
                await asyncio.to_thread(self.notifier, c.tenant_id, c.endpoint_id, ep.url, reason)
        return result

    def _client_for(self, ep: Any) -> SafeHttpClient | None:
        if ep.url.lower().startswith("https:"):
            return self.https_client
        # Plain http only where validation allowed it (non-phi streams, or the test
        # setting); checked again here because the rules may have tightened since.
        if self.http_client is not None and (
            not carries_phi(ep.streams) or self.endpoints.allow_insecure_http
        ):
            return self.http_client
        return None

    async def _post(
        self, ep: Any, webhook_id: str, body: bytes, live: list[str]
    ) -> tuple[int | None, str | None, str | None, int]:
        client = self._client_for(ep)
        if client is None:
            return None, "https is required for this endpoint", None, 0
        headers = signing.headers(live, webhook_id, int(self.clock()), body)
        started = time.monotonic()
        try:
            response = await client.post(ep.url, body, headers, max_bytes=self.config.max_response_bytes)
        except FetchError as exc:
            elapsed = int((time.monotonic() - started) * 1000)
            return None, f"{exc.reason.value}: {exc.detail}"[:300], None, elapsed
        except ValueError as exc:  # a header the client refuses; a bug, but never fatal here
            elapsed = int((time.monotonic() - started) * 1000)
            return None, f"bad_request: {exc}"[:300], None, elapsed
        elapsed = int((time.monotonic() - started) * 1000)
        return response.status, None, response.headers.get("retry-after"), elapsed


# -- the worker role's loop (the composition root builds the dispatcher) ---------------------
async def run_dispatcher(dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    """Dispatch until ``stop`` is set; idle passes wait ``poll_seconds`` (or for ``stop``)."""
    while not stop.is_set():
        try:
            sent = await dispatcher.dispatch_once()
        except Exception:  # a database hiccup must not end the worker role
            log.exception("webhook.pass_failed")
            sent = 0
        if sent == 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=dispatcher.config.poll_seconds)
            except TimeoutError:
                pass
