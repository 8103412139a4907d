"""Bulk send of 10,000 personalized recipients through the worker to a loopback MX.

All 10,000 are rendered and accepted through the HTTP bulk endpoint; 20 recipients spread
over the list are then delivered by the worker over verified TLS and checked at the sink
(each got exactly its own variables), and the ones with a missing variable got nothing.
Delivering all 10,000 would add minutes of SMTP round trips that prove nothing more.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import make_tenant
from tests.integration.delivery.conftest import MxFarm, ca, dns, mx
from tests.integration.delivery.test_worker import DOMAIN, Pipeline, pipeline_settings
from tests.integration.templates.conftest import auth, with_templates
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

from sealmail.app import build_services, build_transport, build_worker
from sealmail.store.tables import recipients as recipient_rows

__all__ = ["ca", "dns", "mx"]  # the delivery fixtures, used here by name

RECIPIENTS = 10_000
SPOT_CHECKS = 20
MISSING_EVERY = 1_000  # every 1000th recipient lacks ``first_name``


@pytest.fixture
def pipeline(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Pipeline]:
    sink = mx.start({"127.0.0.2": {"cert": ca.issue("mx1.example.net")}})["127.0.0.2"]
    dns.add(DOMAIN, "MX", "10 mx1.example.net.")
    dns.add("mx1.example.net", "A", "127.0.0.2")
    settings = pipeline_settings(tmp_path, db_url, dns, ca, mx)
    services = build_services(settings)
    yield Pipeline(services, make_tenant(services), sink, dns, settings)
    services.close()


def drain(p: Pipeline) -> int:
    async def go() -> int:
        transport = build_transport(p.settings)
        try:
            worker = build_worker(p.services, transport, p.settings, name="bulk")
            return await worker.run_until_idle(timeout=240)
        finally:
            await transport.close()

    return asyncio.run(go())


def plain_text(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


@pytest.mark.timeout(300)
def test_ten_thousand_personalized_recipients_each_receive_their_own_variables(pipeline: Pipeline) -> None:
    client = TestClient(with_templates(pipeline.services), raise_server_exceptions=False)
    headers = auth(pipeline.tenant)
    resp = client.post(
        "/v1/templates",
        json={
            "name": "results",
            "subject": "Results for {{ first_name }} ({{ ref }})",
            "html": "<p>Dear {{ first_name }},</p><p>Your code is <b>{{ code }}</b>.</p>"
            '<p><a href="https://portal.clinic.example/r/{{ ref }}">Open results</a></p>',
        },
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    recipients = [
        {
            "to": f"patient{i}@{DOMAIN}",
            "template_data": (
                {"ref": f"R{i}", "code": f"C{i * 7}"}
                if i % MISSING_EVERY == 999
                else {"first_name": f"Name{i}", "ref": f"R{i}", "code": f"C{i * 7}"}
            ),
        }
        for i in range(RECIPIENTS)
    ]
    resp = client.post(
        "/v1/messages/bulk",
        json={
            "from": "Clinic <noreply@clinic.example>",
            "template": "results",
            "stream": "phi",
            "recipients": recipients,
        },
        headers=headers,
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    missing = RECIPIENTS // MISSING_EVERY
    assert (job["accepted"], job["failed"]) == (RECIPIENTS - missing, missing)
    assert [e["index"] for e in job["errors"]] == [i for i in range(RECIPIENTS) if i % MISSING_EVERY == 999]

    sample = list(range(37, RECIPIENTS, RECIPIENTS // SPOT_CHECKS))
    keep = [f"patient{j}@{DOMAIN}" for j in sample]
    with pipeline.services.engine.begin() as conn:
        queued = conn.execute(sa.select(sa.func.count()).select_from(recipient_rows)).scalar_one()
        conn.execute(
            sa.update(recipient_rows).where(recipient_rows.c.address.not_in(keep)).values(status="cancelled")
        )
    assert queued == RECIPIENTS - missing  # one message per recipient, none merged
    assert drain(pipeline) == len(sample)
    received = pipeline.sink.wait_for(len(sample), timeout=30)
    by_rcpt = {m.rcpt_tos[0]: m for m in received if len(m.rcpt_tos) == 1}
    assert len(by_rcpt) == len(sample)
    # 20 recipients spread over the list, plus some that lacked a variable.
    for j in sample:
        raw = by_rcpt[f"patient{j}@{DOMAIN}"].data
        assert f"Subject: Results for Name{j} (R{j})".encode() in raw
        text = plain_text(raw)
        assert f"Dear Name{j}," in text and f"Your code is C{j * 7}." in text
        assert f"Open results (https://portal.clinic.example/r/R{j})" in text
    with pipeline.services.engine.connect() as conn:
        stored = set(conn.execute(sa.select(recipient_rows.c.address)).scalars())
    for j in (999, 4999, RECIPIENTS - 1):
        assert f"patient{j}@{DOMAIN}" not in stored
