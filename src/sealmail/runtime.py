"""Running roles: API, SMTP gateway, workers and the capture sink, in one process or apart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence

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
    build_transport,
    build_webhook_dispatcher,
    build_worker,
)
from sealmail.config import Settings
from sealmail.smtpd.server import SmtpListener

ROLES = ("api", "smtp", "worker", "portal")
PORTAL_SWEEP_SECONDS = 60.0


async def run_portal_sweeper(services: Services, stop: asyncio.Event) -> None:
    """Portal housekeeping: notified/expired events, crypto-shredding of what is done, and
    expired or abandoned file shares."""
    lifecycle = build_portal_lifecycle(services)
    files = build_file_shares(services)
    while not stop.is_set():
        try:
            await asyncio.to_thread(lifecycle.sweep)
            await asyncio.to_thread(files.sweep)
            await asyncio.to_thread(services.form_submissions.deliver_pending)
        except Exception as exc:  # noqa: BLE001 — housekeeping retries on the next round
            structlog.get_logger("sealmail.portal").warning("portal.sweep_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PORTAL_SWEEP_SECONDS)


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


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, format="%(message)s")
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
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )


async def serve(
    services: Services,
    roles: Sequence[str],
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run the given roles until SIGINT/SIGTERM (or ``stop``)."""
    settings = services.settings
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    closers: list[object] = []
    sink = None
    if "worker" in roles and settings.outbound_mode == "capture":
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
    listeners = start_smtp(services) if "smtp" in roles else []
    server = None
    if "api" in roles:
        config = uvicorn.Config(
            api_app(services),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        server = uvicorn.Server(config)
        # This process owns SIGINT/SIGTERM (they stop every role, not just the API).
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # same call shape
        tasks.append(asyncio.create_task(server.serve()))
    portal_server = None
    if "portal" in roles:
        from sealmail.intake.portal_site import create_portal_site

        portal_server = uvicorn.Server(
            uvicorn.Config(
                create_portal_site(services),
                host=settings.portal_host,
                port=settings.portal_port,
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
            )
        )
        portal_server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # same call shape
        tasks.append(asyncio.create_task(portal_server.serve()))
    transport = None
    if "worker" in roles:
        transport = build_transport(settings, sink.port if sink else None)
        worker = build_worker(services, transport)
        tasks.append(asyncio.create_task(worker.run(stop)))
        # Webhook fan-out and delivery run beside mail delivery in every worker process.
        from sealmail.webhooks.dispatcher import run_dispatcher

        tasks.append(asyncio.create_task(run_dispatcher(build_webhook_dispatcher(services), stop)))
        tasks.append(asyncio.create_task(run_portal_sweeper(services, stop)))
        if settings.sms_provider != "none":
            from sealmail.app import build_texting_sender
            from sealmail.sms.runner import run_texting

            sender = build_texting_sender(services)
            tasks.append(asyncio.create_task(run_texting(sender, stop, services.portal_texts)))
    if server is not None:
        # uvicorn exposes readiness only as a flag; bounded poll (10 s).
        for _ in range(500):
            if server.started or tasks[0].done():
                break
            await asyncio.sleep(0.02)
    if ready is not None:
        ready.set()
    if on_ready is not None:
        on_ready()
    try:
        await stop.wait()
    finally:
        if server is not None:
            server.should_exit = True
        if portal_server is not None:
            portal_server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        if transport is not None:
            await transport.close()
        for listener in reversed(listeners):
            listener.stop()
        if sink is not None:
            sink.stop()
        del closers
