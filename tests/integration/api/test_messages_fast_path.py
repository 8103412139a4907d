"""POST /v1/messages' fast way in (``intake.api.fast``): taken by well-formed requests, and
every other request answered by the FastAPI route exactly as before, counted once."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.api.test_messages_api import auth, body, count

from sealmail.app import Services
from sealmail.intake.api.app import create_api
from sealmail.intake.api.fast import FastPost
from sealmail.store.tables import messages


@pytest.fixture
def client(services: Services) -> TestClient:
    return TestClient(create_api(services), raise_server_exceptions=False)


def remaining(resp: httpx.Response) -> int:
    found = re.search(r";r=(\d+)", resp.headers["RateLimit"])
    assert found is not None, resp.headers
    return int(found.group(1))


def test_the_fast_way_stands_ahead_of_each_post_route_it_serves(client: TestClient) -> None:
    routes = client.app.router.routes  # type: ignore[attr-defined]  # the FastAPI app
    for path in ("/v1/messages", "/v1/messages/raw"):
        fast = next(i for i, r in enumerate(routes) if isinstance(r, FastPost) and r.path == path)
        slow = next(
            i
            for i, r in enumerate(routes)
            if isinstance(r, APIRoute) and r.path == path and "POST" in r.methods
        )
        assert fast < slow


def test_a_request_the_fast_way_hands_on_is_counted_once_against_the_key(
    client: TestClient, tenant: TenantFixture
) -> None:
    for _ in range(2):  # a minute's boundary between the requests restarts the count: once more
        minute = time.time() // 60
        ok = client.post("/v1/messages", json=body(), headers=auth(tenant))
        bad = client.post("/v1/messages", json=body(text=None), headers=auth(tenant))
        again = client.post("/v1/messages", json=body(), headers=auth(tenant))
        if time.time() // 60 == minute:
            break
    assert (ok.status_code, bad.status_code, again.status_code) == (202, 422, 202), bad.text
    assert remaining(ok) - remaining(bad) == 1 == remaining(bad) - remaining(again)


def test_a_chunked_body_and_a_charset_are_accepted_and_a_wrong_key_is_401(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    payload = httpx.Request("POST", "/", json=body()).content

    def chunks() -> Iterator[bytes]:
        yield payload[:10]
        yield payload[10:]

    headers = {**auth(tenant), "Content-Type": "application/json; charset=utf-8"}
    resp = client.post("/v1/messages", content=chunks(), headers=headers)
    assert resp.status_code == 202, resp.text
    wrong = client.post("/v1/messages", json=body(), headers={"Authorization": "Bearer sm_x_y"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert count(services, messages) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting, within the body limit
        b'{"from": "a@clinic.example", "to": ' + b"[" * 50_000,  # deep and truncated
        b'{"from": "\xff\xfe", "to": ["p@example.net"], "subject": "s", "text": "t"}',  # not UTF-8
        b'{"from": "a@clinic.example", "to": ["p@example.net"], "subject": "' + b"x" * 500_000 + b'"}',
    ],
    ids=["nested", "nested-truncated", "broken-charset", "huge-field"],
)
def test_hostile_bodies_get_a_problem_and_store_nothing(
    client: TestClient, services: Services, tenant: TenantFixture, raw: bytes
) -> None:
    started = time.monotonic()
    headers = {**auth(tenant), "Content-Type": "application/json"}
    resp = client.post("/v1/messages", content=raw, headers=headers)
    assert 400 <= resp.status_code < 500, resp.status_code
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert count(services, messages) == 0
    assert time.monotonic() - started < 30  # bounded, far above a normal answer
