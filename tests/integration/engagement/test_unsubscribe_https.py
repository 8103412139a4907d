"""Broadcast mail needs an https one-click unsubscribe URL outside development (issue 12.3).

RFC 8058 §3.1: the List-Unsubscribe URI for one-click must be https.  Over real HTTP
(the API app in-process), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_settings, make_tenant

from sealmail.app import broadcast_refusal, build_services
from sealmail.intake.api.app import create_api

ApiFor = Callable[..., tuple[TestClient, dict[str, str]]]


@pytest.fixture
def api_for(tmp_path: Path, db_url: str) -> Iterator[ApiFor]:
    opened = []

    def make(public_url: str, mode: str = "mx") -> tuple[TestClient, dict[str, str]]:
        settings = make_settings(tmp_path, db_url, outbound_mode=mode, public_url=public_url)
        services = build_services(settings)
        opened.append(services)
        tenant = make_tenant(services, name=f"Clinic {len(opened)}", domain=f"c{len(opened)}.example")
        headers = {"Authorization": f"Bearer {tenant.api_key}"}
        return TestClient(create_api(services), raise_server_exceptions=False), {
            **headers,
            "X-From": f"news@{tenant.domain}",
        }

    yield make
    for services in opened:
        services.close()


def _send(client: TestClient, headers: dict[str, str], stream: str) -> httpx.Response:
    sender = headers["X-From"]
    response: httpx.Response = client.post(
        "/v1/messages",
        headers={"Authorization": headers["Authorization"]},
        json={"from": sender, "to": ["pat@example.net"], "subject": "News", "text": "Hi", "stream": stream},
    )
    return response


def test_an_http_public_url_refuses_broadcast_but_not_other_streams(api_for: ApiFor) -> None:
    client, headers = api_for("http://mail.clinic.example")
    refused = _send(client, headers, "broadcast")
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "https" in refused.text and "RFC 8058" in refused.text
    assert _send(client, headers, "transactional").status_code == 202


def test_an_https_public_url_accepts_broadcast(api_for: ApiFor) -> None:
    client, headers = api_for("https://mail.clinic.example")
    assert _send(client, headers, "broadcast").status_code == 202


@pytest.mark.parametrize(
    ("url", "mode", "refused"),
    [
        ("http://mail.clinic.example", "mx", True),
        ("http://mail.clinic.example", "smarthost", True),
        ("http://mail.clinic.example", "capture", False),  # development: nothing leaves
        ("http://127.0.0.1:8025", "mx", False),  # loopback: a developer's own machine
        ("http://localhost:8025", "mx", False),
        ("https://mail.clinic.example", "mx", False),
    ],
)
def test_broadcast_refusal_rule(tmp_path: Path, url: str, mode: str, refused: bool) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path}/x.db",
        outbound_mode=mode,
        public_url=url,
        smarthost_host="relay.test",
    )
    assert (broadcast_refusal(settings) is not None) is refused
