"""What the submission gateway is handed: its options, the services it calls, and the
per-connection facts (who is sending) its handler and protocol share."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import Session
from sqlalchemy.engine import Engine

from sealmail.domain.intake_limits import IntakeLimits
from sealmail.domain.tls_policy import Stream
from sealmail.limits.service import FailureThrottle
from sealmail.messages.service import Messages
from sealmail.secureline.keydir import KeyDirectory
from sealmail.smtpd.connection_gate import IpNetwork
from sealmail.smtpd.server import ListenerOptions
from sealmail.tenancy.service import Principal, Tenancy


class GatewayEvent(enum.StrEnum):
    """Log event names of the submission gateway (``smtpd.ListenerEvent`` has the rest)."""

    AUTH_SUCCEEDED = "smtp.auth_succeeded"
    AUTH_FAILED = "smtp.auth_failed"
    AUTH_LOCKED_OUT = "smtp.auth_locked_out"
    CONNECTOR_ADMITTED = "smtp.connector_admitted"
    ACCEPTED = "smtp.accepted"
    ACCEPT_FAILED = "smtp.accept_failed"


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """The submission listener's settings, as the composition root read them."""

    # Where it binds; ``listen.hostname`` is also the domain of Message-IDs we generate.
    listen: ListenerOptions
    max_recipients: int
    limits: IntakeLimits
    connector_tenant: str | None = None
    connector_networks: tuple[IpNetwork, ...] = ()
    # Whether a client certificate (verified against the connector CA) admits a connector.
    connector_ca: bool = False


@dataclass(frozen=True, slots=True)
class GatewayServices:
    """The services the gateway calls, and nothing else."""

    engine: Engine
    tenancy: Tenancy
    messages: Messages
    keydir: KeyDirectory
    # Failed logins across connections, per client address and per username.
    auth_throttle: FailureThrottle


@dataclass(frozen=True, slots=True)
class Sender:
    """Who is submitting on this connection, and on which stream."""

    principal: Principal
    stream: Stream
    via: str  # "auth" or "connector"


class SubmissionSession(Session):
    """aiosmtpd's session plus the sender this connection authenticated as."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.sender: Sender | None = None

    # aiosmtpd 1.4 sets ``login_data`` after every successful AUTH and logs a
    # deprecation warning each time; nothing here reads it, so store it quietly.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value
