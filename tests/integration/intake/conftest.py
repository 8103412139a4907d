"""Fixtures for the SMTP gateway: test CAs, certificate files, running gateways, clients."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.ca import IssuedCert, TestCA

from sealmail.app import Services, build_gateway
from sealmail.intake.smtp import SmtpGateway

CLIENT_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def server_ca() -> Iterator[TestCA]:
    """Issues the gateway's certificate; the clients trust it."""
    with TestCA() as ca:
        yield ca


@pytest.fixture(scope="session")
def connector_ca() -> Iterator[TestCA]:
    """A separate CA whose client certificates identify outbound connectors."""
    with TestCA() as ca:
        yield ca


@pytest.fixture
def tls_files(tmp_path: Path, server_ca: TestCA) -> tuple[Path, Path]:
    issued = server_ca.issue("127.0.0.1", "localhost", "sealmail.localhost")
    cert, key = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    return cert, key


GatewayFactory = Callable[..., SmtpGateway]


@pytest.fixture
def start_gateway(services: Services, tls_files: tuple[Path, Path]) -> Iterator[GatewayFactory]:
    """Start a gateway on 127.0.0.1, port 0, with settings overrides; stopped at teardown."""
    started: list[SmtpGateway] = []
    cert, key = tls_files

    def start(**overrides: Any) -> SmtpGateway:
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": 0,
            "smtp_tls_cert": cert,
            "smtp_tls_key": key,
        }
        values.update(overrides)
        gateway = build_gateway(services, services.settings.model_copy(update=values))
        gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> SmtpGateway:
    return start_gateway()


@pytest.fixture
def credential(services: Services, tenant: Any) -> tuple[str, str, str]:
    """(credential id, username, password) of an SMTP credential of ``tenant``."""
    return services.tenancy.create_smtp_credential(tenant.id, actor="test")


ClientFactory = Callable[..., smtplib.SMTP]


@pytest.fixture
def connect(server_ca: TestCA) -> Iterator[ClientFactory]:
    """Open an smtplib client to a gateway, EHLO'd and (by default) after STARTTLS."""
    clients: list[smtplib.SMTP] = []

    def open_client(
        gateway: SmtpGateway, *, starttls: bool = True, client_cert: IssuedCert | None = None
    ) -> smtplib.SMTP:
        # The host goes to the constructor: smtplib verifies STARTTLS against it.
        client = smtplib.SMTP("127.0.0.1", gateway.port, local_hostname="client.test", timeout=CLIENT_TIMEOUT)
        clients.append(client)
        client.ehlo()
        if starttls:
            context = server_ca.client_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if client_cert is not None:
                client_cert.leaf.configure_cert(context)
            client.starttls(context=context)
            client.ehlo()
        return client

    yield open_client
    for client in clients:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
