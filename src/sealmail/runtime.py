"""Running roles: API, SMTP gateway, workers and the capture sink, in one process or apart
(the worker in child processes of ``serve``: ``supervisor.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from fastapi import FastAPI

from sealmail.app import (
    Services,
    build_file_shares,
    build_gateway,
    build_portal_lifecycle,
    build_report_listener,
    build_server_tls,
    build_tlsrpt_scheduler,
    build_transport,
    build_webhook_dispatcher,
    build_worker,
)
from sealmail.config import Settings
from sealmail.domain.display_text import terminal_text
from sealmail.smtpd.server import SmtpListener
from sealmail.supervisor import Supervisor, WorkerChildFailed, child_argv, watch_parent
from sealmail.web.head_deadline import HeadDeadline

if TYPE_CHECKING:
    from sealmail.delivery.capture_sink import CaptureSink
    from sealmail.delivery.smtp_client import OutboundTransport

ROLES = ("api", "smtp", "worker", "portal")
PORTAL_SWEEP_SECONDS = 60.0
EVIDENCE_TICK_SECONDS = 60.0
# How often a worker checks whether yesterday's TLS reports still need sending (cheap: one
# claim attempt; the first tick after midnight UTC, on any host, does the work).
TLSRPT_TICK_SECONDS = 600.0
# How often a worker checks whether this period's restore drill is still unclaimed (one insert).
DRILL_TICK_SECONDS = 300.0
# How often a worker checks whether this period's OSV refresh is still unclaimed (one select).
ADVISORY_TICK_SECONDS = 600.0


async def run_every(
    stop: asyncio.Event, seconds: float, one_round: Callable[[], Awaitable[None]], logger: str, event: str
) -> None:
    """Housekeeping beside delivery: a round, then a pause, until ``stop``.

    A round that fails is logged (its error type, never data) and the next one tries again:
    every round here is idempotent, so a database hiccup costs only time.
    """
    while not stop.is_set():
        try:
            await one_round()
        except Exception as exc:  # noqa: BLE001 — housekeeping retries on the next round
            structlog.get_logger(logger).warning(event, error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def run_portal_sweeper(services: Services, stop: asyncio.Event) -> None:
    """Portal housekeeping: notified/expired events, crypto-shredding of what is done, and
    expired or abandoned file shares."""
    lifecycle = build_portal_lifecycle(services)
    files = build_file_shares(services)

    async def sweep() -> None:
        await asyncio.to_thread(lifecycle.sweep)
        await asyncio.to_thread(files.sweep)
        await asyncio.to_thread(services.form_submissions.deliver_pending)

    await run_every(stop, PORTAL_SWEEP_SECONDS, sweep, "sealmail.portal", "portal.sweep_failed")


async def run_evidence_schedule(services: Services, stop: asyncio.Event) -> None:
    """Audit anchors once per period and the retention purge (``evidence/schedule.py``).
    A failed tick leaves the anchor period open for the next one."""
    from sealmail.app import build_evidence_schedule

    schedule = build_evidence_schedule(services)

    async def tick() -> None:
        await asyncio.to_thread(schedule.tick)

    await run_every(stop, EVIDENCE_TICK_SECONDS, tick, "sealmail.evidence", "evidence.tick_failed")


async def run_restore_drills(services: Services, stop: asyncio.Event, owner: str) -> None:
    """The scheduled restore drill (``evidence/drill_schedule.py``): each tick claims the
    current period if no worker has; the drill itself runs in a thread."""
    from sealmail.app import build_drill_schedule

    schedule = build_drill_schedule(services, owner)
    if schedule is None:
        return

    async def tick() -> None:
        await asyncio.to_thread(schedule.tick)

    await run_every(stop, DRILL_TICK_SECONDS, tick, "sealmail.evidence", "evidence.drill_tick_failed")


async def run_advisory_refresh(services: Services, stop: asyncio.Event, owner: str) -> None:
    """The scheduled OSV refresh (``evidence/advisory_refresh.py``), cancelled at ``stop``
    rather than waited out: a slow OSV answer never holds up a worker's shutdown."""
    from sealmail.app import build_advisory_refresh

    refresh = build_advisory_refresh(services, owner)
    if refresh is None:
        return

    async def tick() -> None:
        ticking = asyncio.create_task(refresh.tick())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({ticking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (ticking, stopping):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking

    await run_every(stop, ADVISORY_TICK_SECONDS, tick, "sealmail.evidence", "evidence.advisory_tick_failed")


JOURNEY_SECONDS = 5.0
# Date triggers scan contacts by a date attribute: once an hour is plenty for "7 days before".
DATE_SWEEP_SECONDS = 3600.0


async def run_marketing(services: Services, stop: asyncio.Event, name: str) -> None:
    """Marketing housekeeping beside delivery: started campaigns expanded (under a lease),
    due journey steps and the complaint breaker every few seconds, date triggers and
    authorization expiry (all idempotent)."""
    mk = services.marketing
    swept = -DATE_SWEEP_SECONDS

    async def one_round() -> None:
        nonlocal swept
        if time.monotonic() - swept >= DATE_SWEEP_SECONDS:
            await asyncio.to_thread(mk.journeys.enroll_dates_everywhere)
            await asyncio.to_thread(mk.consent.expire_due)
            swept = time.monotonic()
        await asyncio.to_thread(mk.runs.expand_due, name)  # started campaigns' audiences
        await asyncio.to_thread(mk.runs.settle)
        await asyncio.to_thread(mk.breaker.sweep)  # complaint-rate pause, every round
        while await asyncio.to_thread(mk.journeys.run_due, name) and not stop.is_set():
            pass

    await run_every(stop, JOURNEY_SECONDS, one_round, "sealmail.marketing", "journeys.round_failed")


def api_app(services: Services) -> FastAPI:
    """The API role's app: the REST API with the console mounted at ``/console`` (issue 14)."""
    from sealmail.app import build_console
    from sealmail.intake.api.app import create_api

    api = create_api(services)
    api.mount("/console", build_console(services))
    return api


def start_smtp(services: Services) -> list[SmtpListener]:
    """Start the submission gateway and, when configured, the inbound report listener."""
    tls = build_server_tls(services.settings)
    gateway = build_gateway(services, tls=tls)
    gateway.start()
    listener = build_report_listener(services, tls=tls)
    if listener is None:
        return [gateway]
    try:
        listener.start()
    except BaseException:
        gateway.stop()
        raise
    return [gateway, listener]


class _TerminalFormatter(logging.Formatter):
    """Library log lines quote what peers sent (a reply, a host name): escape its controls."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_text(super().format(record))


def _terminal_line(_logger: Any, _method: str, rendered: Any) -> str:
    """After ConsoleRenderer (no colours, so no codes of its own): the operator's terminal
    gets ESC, C1 and bidi controls in logged values as visible escapes (JSON escapes them).
    ``rendered`` is the renderer's line; structlog types every processor's input as a dict."""
    return terminal_text(str(rendered))


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    handler = logging.StreamHandler()
    handler.setFormatter(_TerminalFormatter("%(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # aiosmtpd logs every envelope address at INFO on "mail.log"; addresses are PHI-adjacent
    # and never belong in our logs.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO; a WKD URL carries a recipient's local part.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        # plain_traceback: the default (rich) formatter prints every frame's local variables,
        # which in a delivery or intake frame are message bodies and addresses (PHI).
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
            *([] if settings.log_format == "json" else [_terminal_line]),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )


async def serve(
    services: Services,
    roles: Sequence[str],
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    *,
    worker_children: int = 0,
    child_of: int | None = None,
) -> None:
    """Run the given roles until SIGINT/SIGTERM (or ``stop``).

    With ``worker_children`` the worker role runs in that many child processes
    (``supervisor.py``) instead of here; this process keeps the capture sink they deliver to.
    ``child_of`` makes this process such a child: no capture sink of its own (the parent's
    port is in its settings), and it stops when that parent is gone.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    # First, before anything runs: a taken port is then a clear error with nothing to stop
    # (uvicorn binding its own ended in SystemExit inside its task, a traceback, and a
    # portal that failed so went unnoticed while the rest served on).
    sockets = _bind_http(services.settings, roles)
    sink, listeners = _start_sink_and_smtp(services, roles, child_of is None, sockets)
    servers = _start_http(services, roles, tasks, sockets)
    if child_of is not None:
        tasks.append(asyncio.create_task(watch_parent(child_of, stop)))
    here = "worker" in roles and not worker_children
    transport = _start_worker(services, sink, stop, tasks) if here else None
    if "api" in roles:
        await _api_started(servers[0], tasks[0])
    # After the API answers: a child's start-up (imports, services) would compete with it for CPU.
    children = _start_children(worker_children, sink, stop) if "worker" in roles else None
    if ready is not None:
        ready.set()
    if on_ready is not None:
        on_ready()
    try:
        await stop.wait()
    finally:
        stop.set()  # also when leaving by an exception: the worker and the children stop too
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        # The children drain into the capture sink, so they are waited for before it stops.
        failure = await _children_stopped(children)
        if transport is not None:
            await transport.close()
        for listener in reversed(listeners):
            listener.stop()
        if sink is not None:
            sink.stop()
    if failure is not None:
        raise failure


async def _children_stopped(children: asyncio.Task[None] | None) -> WorkerChildFailed | None:
    """Wait for the supervisor to have stopped every child; its give-up, to raise once the
    rest has stopped too."""
    if children is None:
        return None
    try:
        await children
    except WorkerChildFailed as exc:
        return exc
    return None


def _start_sink_and_smtp(
    services: Services, roles: Sequence[str], own_sink: bool, sockets: dict[str, socket.socket]
) -> tuple[CaptureSink | None, list[SmtpListener]]:
    """The capture sink (a worker with no parent's) and the SMTP listeners; if one cannot
    start, what started is stopped and the HTTP sockets are closed."""
    sink = None
    try:
        sink = _start_capture_sink(services) if "worker" in roles and own_sink else None
        return sink, start_smtp(services) if "smtp" in roles else []
    except BaseException:
        for sock in sockets.values():
            sock.close()
        if sink is not None:
            sink.stop()
        raise


def _bind_http(settings: Settings, roles: Sequence[str]) -> dict[str, socket.socket]:
    """A bound socket for each HTTP role in ``roles`` (``api``, ``portal``); an
    ``EADDRINUSE`` that names the address and the setting to change, none left open."""
    wanted = [
        (role, host, port, name)
        for role, host, port, name in (
            ("api", settings.api_host, settings.api_port, "SEALMAIL_API_PORT"),
            ("portal", settings.portal_host, settings.portal_port, "SEALMAIL_PORTAL_PORT"),
        )
        if role in roles
    ]
    bound: dict[str, socket.socket] = {}
    try:
        for role, host, port, name in wanted:
            bound[role] = _listening(host, port, name)
    except OSError:
        for sock in bound.values():
            sock.close()
        raise
    return bound


def _listening(host: str, port: int, setting: str) -> socket.socket:
    """Bound as uvicorn binds (``SO_REUSEADDR``, IPv6 for a host with a colon)."""
    # IPPROTO_TCP named, not 0: asyncio's loop sets TCP_NODELAY only on sockets whose
    # ``proto`` says TCP, and accepted sockets inherit it.  Without it every API answer
    # (headers, then body: two writes) waited for the client's delayed ACK, 40 ms each on
    # Linux, on the standard loop (uvloop sets it on any TCP socket).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(exc.errno, f"address already in use: {host}:{port} ({setting})") from exc
        raise
    sock.set_inheritable(True)
    return sock


def _start_http(
    services: Services,
    roles: Sequence[str],
    tasks: list[asyncio.Task[None]],
    sockets: dict[str, socket.socket],
) -> list[uvicorn.Server]:
    """The API and portal HTTP servers of ``roles`` on their bound ``sockets``, serving as
    tasks (the API's first)."""
    settings = services.settings
    servers: list[uvicorn.Server] = []
    if "api" in roles:
        servers.append(_http_server(api_app(services), settings.api_host, settings.api_port))
        tasks.append(asyncio.create_task(servers[-1].serve(sockets=[sockets["api"]])))
    if "portal" in roles:
        from sealmail.intake.portal_site import create_portal_site

        site = create_portal_site(services)
        servers.append(_http_server(site, settings.portal_host, settings.portal_port))
        tasks.append(asyncio.create_task(servers[-1].serve(sockets=[sockets["portal"]])))
    return servers


def _start_children(count: int, sink: CaptureSink | None, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """``count`` worker children with this process's environment, delivering (in capture mode)
    to this process's sink: its port, bound here, goes to them in their settings."""
    if not count:
        return None
    env = dict(os.environ)
    if sink is not None:
        env["SEALMAIL_CAPTURE_PORT"] = str(sink.port)
    supervisor = Supervisor(count, child_argv(os.getpid()), env)
    return asyncio.create_task(supervisor.run(stop))


def _start_capture_sink(services: Services) -> CaptureSink | None:
    """The built-in capture sink a worker in capture mode delivers to, started."""
    settings = services.settings
    if settings.outbound_mode != "capture":
        return None
    from sealmail.delivery.capture_sink import CaptureSink

    sink = CaptureSink(
        services.engine,
        settings.capture_host,
        settings.capture_port,
        settings.resolved_tls_cert,
        settings.resolved_tls_key,
        "localhost",
    )
    sink.start()
    return sink


def _http_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            http=HeadDeadline,  # a request's head within 10 s: no slowloris (web/head_deadline.py)
        )
    )
    # This process owns SIGINT/SIGTERM (they stop every role, not just the HTTP servers).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # same call shape
    return server


def _start_worker(
    services: Services, sink: CaptureSink | None, stop: asyncio.Event, tasks: list[asyncio.Task[None]]
) -> OutboundTransport:
    """Mail delivery, webhook fan-out, the portal sweeper and the evidence schedule as tasks."""
    transport = build_transport(services.settings, sink.port if sink else None)
    worker = build_worker(services, transport)
    tasks.append(asyncio.create_task(worker.run(stop)))
    # Webhook fan-out and delivery run beside mail delivery in every worker process.
    from sealmail.webhooks.dispatcher import run_dispatcher

    tasks.append(asyncio.create_task(run_dispatcher(build_webhook_dispatcher(services), stop)))
    tasks.append(asyncio.create_task(run_portal_sweeper(services, stop)))
    tasks.append(asyncio.create_task(run_evidence_schedule(services, stop)))
    if services.settings.restore_drill_minutes:
        tasks.append(asyncio.create_task(run_restore_drills(services, stop, worker.name)))
    if services.settings.osv_refresh_minutes:
        tasks.append(asyncio.create_task(run_advisory_refresh(services, stop, worker.name)))
    tasks.append(asyncio.create_task(run_marketing(services, stop, worker.name)))
    if services.settings.sms_provider != "none":
        from sealmail.app import build_texting_sender
        from sealmail.sms.runner import run_texting

        sender = build_texting_sender(services)
        tasks.append(asyncio.create_task(run_texting(sender, stop, services.portal_texts)))
    if services.settings.tlsrpt_auto_send:
        from sealmail.tlsrpt.scheduler import run_tlsrpt_scheduler

        scheduler = build_tlsrpt_scheduler(services, worker.name)
        tasks.append(asyncio.create_task(run_tlsrpt_scheduler(scheduler, stop, TLSRPT_TICK_SECONDS)))
    return transport


async def _api_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    # uvicorn exposes readiness only as a flag; bounded poll (10 s).
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
