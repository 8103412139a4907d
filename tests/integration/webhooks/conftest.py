"""Fixtures for webhook tests: a loopback receiver, the endpoints service, message helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Header
from fastapi.testclient import TestClient
from tests.integration.webhooks.receiver import Receiver

from sealmail.app import Services, build_webhook_dispatcher
from sealmail.domain.tls_policy import Stream
from sealmail.messages.service import EnvelopeRecipient, Submission
from sealmail.tenancy.service import Principal
from sealmail.web import problems
from sealmail.webhooks import api as webhooks_api
from sealmail.webhooks.endpoints import WebhookEndpoints

PATIENT = "patient.jane@example.net"
SUBJECT = "Your biopsy results from Dr. Lee"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def endpoints(services: Services) -> WebhookEndpoints:
    return WebhookEndpoints(services.engine, services.keyring, allow_insecure_http=True)


def send_message(
    services: Services,
    who: Principal,
    domain: str,
    *,
    stream: Stream = Stream.TRANSACTIONAL,
    tags: tuple[str, ...] = ("appointment-reminder",),
) -> str:
    sender = f"clinic@{domain}"
    raw = (
        f"From: {sender}\r\nTo: {PATIENT}\r\nSubject: {SUBJECT}\r\n"
        f"Message-ID: <m1@{domain}>\r\n\r\nSee you Tuesday.\r\n"
    ).encode()
    sub = Submission(
        stream=stream,
        source="api",
        mail_from=sender,
        header_from=sender,
        recipients=(EnvelopeRecipient(PATIENT, "example.net", "to"),),
        raw=raw,
        message_id_header=f"<m1@{domain}>",
        tags=tags,
        metadata={"ehr_ref": "opaque-9f2c"},
    )
    result, _ = services.messages.submit(who, sub)
    return result.id


def dispatch(services: Services, now: datetime | None = None) -> int:
    return asyncio.run(build_webhook_dispatcher(services).dispatch_once(now))


def api_client(services: Services) -> TestClient:
    """The management API router behind problem+json, authenticated by API key."""
    app = FastAPI()
    problems.install(app)

    def admin(authorization: Annotated[str, Header()]) -> Principal:
        return services.tenancy.authenticate(authorization.removeprefix("Bearer "))

    app.include_router(
        webhooks_api.router(services.webhook_endpoints, services.webhook_dispatcher, Depends(admin))
    )
    return TestClient(app, raise_server_exceptions=False)
