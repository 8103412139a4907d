"""A domain added with `sealmail domains add` signs its mail (issue 12.1).

The CLI prints the records it wants published; the test publishes exactly those on a
loopback DNS server, `domains check` and `domains verify` run against it, a message goes
through the real worker to a loopback MX, and dkimpy verifies the signature through the
same DNS — an implementation independent of Sealmail's signer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import dkim as dkimpy
import pytest
from dns import nameserver as dns_nameserver
from dns import resolver as dns_resolver
from tests.integration.delivery.conftest import MxFarm, ca, dns, mx, mx_settings  # noqa: F401 — fixtures
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until
from typer.testing import CliRunner

from sealmail.app import Services, build_services
from sealmail.cli import app
from sealmail.config import Settings
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.runtime import build_transport, build_worker

pytest.importorskip("nacl", reason="dkimpy verifies ed25519 only with PyNaCl")

runner = CliRunner()
DOMAIN = "newclinic.example"


@pytest.fixture
def sink(dns: DnsServer, mx: MxFarm, ca: TestCA) -> SmtpSink:  # noqa: F811
    started = mx.start({"127.0.0.2": {"cert": ca.issue("mx.example.net")}})["127.0.0.2"]
    dns.add("example.net", "MX", "10 mx.example.net.")
    dns.add("mx.example.net", "A", "127.0.0.2")
    return started


@pytest.fixture
def settings(
    tmp_path: Path,
    db_url: str,
    dns: DnsServer,  # noqa: F811
    mx: MxFarm,  # noqa: F811
    ca: TestCA,  # noqa: F811
    sink: SmtpSink,
) -> Settings:
    return mx_settings(tmp_path, db_url, dns, mx, ca)


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "SEALMAIL_HOME": str(settings.home),
        "SEALMAIL_DATABASE_URL": settings.resolved_database_url,
        "SEALMAIL_DNS_NAMESERVERS": f'["{settings.dns_nameservers[0]}"]',
    }


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.close()


def cli(env: dict[str, str], *args: str) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def publish(dns_server: DnsServer, output: str) -> list[str]:
    """Publish each `purpose: name TYPE value` line the CLI printed; returns the purposes."""
    purposes = []
    for purpose, name, type_, value in re.findall(r"^(\w+): (\S+) (TXT|MX) (.+)$", output, re.M):
        if type_ == "TXT":
            # Long DKIM keys are published as 255-byte strings, as a zone file would.
            chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
            dns_server.add(name, "TXT", " ".join(f'"{c}"' for c in chunks))
        else:
            dns_server.add(name, type_, value)
        purposes.append(purpose)
    return purposes


def test_cli_added_domain_publishes_checks_verifies_and_signs(
    services: Services,
    settings: Settings,
    cli_env: dict[str, str],
    dns: DnsServer,  # noqa: F811
    sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = services.tenancy.create_tenant("New Clinic", actor="test")
    _, key = services.tenancy.create_api_key(tenant_id, "t", ["send", "admin"], actor="test")

    added = cli(cli_env, "domains", "add", DOMAIN, "--tenant", tenant_id)
    token = re.search(r'"(sealmail-verification=[0-9a-f]+)"', added)
    assert token, added
    purposes = publish(dns, added)
    assert purposes.count("dkim") == 2 and "spf" in purposes and "dmarc" in purposes, added
    dns.add(f"_sealmail.{DOMAIN}", "TXT", f'"{token.group(1)}"')

    checked = cli(cli_env, "domains", "check", DOMAIN, "--tenant", tenant_id)
    assert "FAIL" not in checked and checked.count("ok") >= 4, checked
    assert f"{DOMAIN} verified" in cli(cli_env, "domains", "verify", DOMAIN, "--tenant", tenant_id)
    records = cli(cli_env, "domains", "records", DOMAIN, "--tenant", tenant_id)
    assert [line for line in records.splitlines() if line.startswith("dkim:")] == [
        line for line in added.splitlines() if line.startswith("dkim:")
    ]

    mid = _send(services, key)
    _run_worker(services, settings)
    wait_until(lambda: sink.messages, 10, "the message did not arrive")
    [m] = sink.messages
    assert f"X-Sealmail-Message-Id: {mid}".encode() in m.data
    assert b"DKIM-Signature:" in m.data
    resolver = dns_resolver.Resolver(configure=False)
    resolver.nameservers = [dns_nameserver.Do53Nameserver(*dns.address)]
    monkeypatch.setattr(dns_resolver, "default_resolver", resolver)
    assert dkimpy.verify(m.data, minkey=2048), "DKIM signature does not verify"
    assert re.search(rb"\bd=" + DOMAIN.encode() + rb";", m.data)


def _run_worker(services: Services, settings: Settings) -> None:
    async def go() -> None:
        transport = build_transport(settings)
        try:
            await build_worker(services, transport, settings).run_until_idle(timeout=30)
        finally:
            await transport.close()

    asyncio.run(go())


def _send(services: Services, api_key: str) -> str:
    body = MessageIn.model_validate(
        {"from": f"front@{DOMAIN}", "to": ["pat@example.net"], "subject": "Hello", "text": "Hi."}
    )
    principal = services.tenancy.authenticate(api_key)
    result, _ = services.messages.submit(principal, compose.from_message(body, DOMAIN, 1000))
    return result.id


def test_verified_domain_without_a_key_is_held_not_sent_unsigned(
    services: Services, settings: Settings, sink: SmtpSink
) -> None:
    """A domain verified before registration made keys (the old CLI path) never sends unsigned."""
    tenant_id = services.tenancy.create_tenant("Old Clinic", actor="test")
    _, key = services.tenancy.create_api_key(tenant_id, "t", ["send", "read"], actor="test")
    services.tenancy.add_domain(tenant_id, DOMAIN, actor="test", verified=True)

    mid = _send(services, key)
    _run_worker(services, settings)
    assert sink.messages == []
    principal = services.tenancy.authenticate(key)
    [event] = services.messages.list_events(principal, message_id=mid, type_="message.deferred").data
    assert "has no DKIM signing key" in str(event["data"]), event

    # `domains verify` on the already verified domain creates the missing keys.
    services.sender_domains.mark_verified(tenant_id, DOMAIN, actor="test")
    assert services.identities.dkim_signer(tenant_id, DOMAIN) is not None
