"""Request limits over real HTTP (uvicorn on loopback): per key, failed authentication, public links.

Fixed windows let a client send up to twice a limit across a window boundary, so the tests
never count on a boundary not passing: they look for the 429 within ``2 * limit + 1``
requests, or redo a step that straddled a boundary.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pytest
from argon2 import PasswordHasher
from tests.conftest import TenantFixture, make_settings, make_tenant
from tests.integration.client.server import ApiServer
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer

from sealmail.app import Services, build_limiter, build_services
from sealmail.config import Settings
from sealmail.limits.service import MemoryLimiter
from sealmail.store import db

T = TypeVar("T")
PROBLEM = "application/problem+json"


class CountingHasher(PasswordHasher):
    """The real argon2 hasher, counting verifications: shows when argon2 ran and when not."""

    verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        type(self).verified += 1
        return super().verify(hash, password)


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[Services, ApiServer]]:
    svc = build_services(settings)
    try:
        with ApiServer(svc) as server:
            yield svc, server
    finally:
        svc.close()


def in_one_window(step: Callable[[], T], window: int = 60) -> T:
    """Run ``step`` again (once) if it straddled a fixed-window boundary."""
    for _ in range(2):
        before = math.floor(time.time() / window)
        result = step()
        if math.floor(time.time() / window) == before:
            return result
    raise AssertionError("two window boundaries in a row; the clock is misbehaving")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_refusal(response: httpx.Response, policy: str, limit: int) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/rate-limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert (
        response.headers["RateLimit-Policy"]
        == f'"{policy}";q={limit};w={response.headers["RateLimit-Policy"].split("w=")[1]}'
    )
    assert re.fullmatch(rf'"{policy}";r=0;t=\d+', response.headers["RateLimit"])


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[Services, ApiServer]]:
    with serve(settings) as served:
        yield served


def test_key_over_its_tenant_limit_gets_429_problem_with_ratelimit_headers(
    api: tuple[Services, ApiServer],
) -> None:
    svc, server = api
    t = make_tenant(svc)
    svc.tenancy.update_settings(t.id, {"rate_limit": 3}, actor="test")
    with httpx.Client(base_url=server.url, headers=bearer(t.api_key), verify=default_context()) as http:
        first = http.get("/v1/messages")
        assert first.status_code == 200
        assert first.headers["RateLimit-Policy"] == '"key";q=3;w=60'
        assert re.fullmatch(r'"key";r=[0-2];t=\d+', first.headers["RateLimit"])
        answers = [http.get("/v1/messages") for _ in range(6)]
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    assert_refusal(refused[0], "key", 3)


def test_tenant_rate_limit_setting_is_capped_by_the_operator(
    api: tuple[Services, ApiServer],
) -> None:
    svc, server = api
    t = make_tenant(svc)
    with httpx.Client(base_url=server.url, headers=bearer(t.api_key), verify=default_context()) as http:
        too_high = http.patch("/v1/tenant/settings", json={"rate_limit": 10**6})
        assert too_high.status_code == 422
        assert too_high.json()["errors"][0]["field"] == "rate_limit"
        ok = http.patch("/v1/tenant/settings", json={"rate_limit": 50})
        assert ok.json()["settings"]["rate_limit"] == 50
        cleared = http.patch("/v1/tenant/settings", json={"rate_limit": None})
        assert "rate_limit" not in cleared.json()["settings"]


def test_limits_hold_across_two_api_processes_on_one_database(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, rate_limit_store="database")
    with serve(settings) as (svc, one), serve(settings) as (_, two):
        t = make_tenant(svc)
        svc.tenancy.update_settings(t.id, {"rate_limit": 4}, actor="test")

        def alternate() -> list[int]:
            codes = []
            for i in range(3):
                for server in (one, two):
                    reply = httpx.get(f"{server.url}/v1/messages", headers=bearer(t.api_key))
                    codes.append(reply.status_code)
                    if i == 0:
                        assert reply.status_code == 200
            return codes

        # Six requests, three to each: apart, neither instance would reach four.
        codes = in_one_window(alternate)
        assert codes.count(429) >= 2, codes


def test_default_store_is_shared_on_postgresql_and_in_process_on_sqlite(settings: Settings) -> None:
    engine = db.create_engine(settings.resolved_database_url)
    try:
        limiter = build_limiter(settings, engine)
        assert isinstance(limiter, MemoryLimiter) == (engine.dialect.name == "sqlite")
    finally:
        engine.dispose()


def test_unknown_key_and_wrong_secret_answer_alike_and_both_are_throttled(
    tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url, auth_failure_limit=3)
    with serve(settings) as (svc, server):
        svc.tenancy.hasher = CountingHasher(time_cost=1, memory_cost=64)
        t = make_tenant(svc)
        lookup = t.api_key.split("_")[1]
        wrong, unknown = f"sm_{lookup}_not-the-secret", "sm_0123456789abcdef_not-the-secret"
        before = CountingHasher.verified
        a = httpx.post(f"{server.url}/v1/messages", headers=bearer(wrong), json={})
        after_wrong = CountingHasher.verified
        b = httpx.post(f"{server.url}/v1/messages", headers=bearer(unknown), json={})
        # Both pay one argon2 verification: the time does not tell them apart either.
        assert after_wrong - before == 1
        assert CountingHasher.verified - after_wrong == 1
        assert (a.status_code, a.content, a.headers["www-authenticate"]) == (
            b.status_code,
            b.content,
            b.headers["www-authenticate"],
        )
        assert a.status_code == 401

        def third_then_refused() -> list[httpx.Response]:
            return [httpx.get(f"{server.url}/v1/messages", headers=bearer(wrong)) for _ in range(4)]

        replies = in_one_window(third_then_refused, settings.auth_failure_window_seconds)
        refused = [r for r in replies if r.status_code == 429]
        assert refused, [r.status_code for r in replies]
        counted = CountingHasher.verified
        again = httpx.get(f"{server.url}/v1/messages", headers=bearer(unknown))
        assert_refusal(again, "auth", 3)
        # Refused before argon2: a flood of guesses costs no hashing.
        assert CountingHasher.verified == counted


def test_failures_for_one_key_id_are_throttled_across_client_addresses(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, auth_failure_limit=2)
    with serve(settings) as (svc, server):
        t = make_tenant(svc)
        lookup = t.api_key.split("_")[1]

        def from_address(address: str, key: str) -> httpx.Response:
            transport = httpx.HTTPTransport(local_address=address)
            with httpx.Client(transport=transport) as http:
                return http.get(f"{server.url}/v1/messages", headers=bearer(key))

        def guesses() -> list[int]:
            return [from_address(f"127.0.0.{n}", f"sm_{lookup}_guess{n}").status_code for n in (2, 3, 4, 5)]

        codes = in_one_window(guesses, settings.auth_failure_window_seconds)
        assert codes[:2] == [401, 401]
        assert 429 in codes[2:], codes
        # Another key id from a fresh address is not affected.
        assert from_address("127.0.0.9", "sm_0123456789abcdef_x").status_code == 401


@pytest.fixture
def silent_dns() -> Iterator[socket.socket]:
    """A UDP port on loopback that receives queries and never answers them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_dns_timeout_on_verify_is_503_and_other_requests_answer_meanwhile(
    tmp_path: Path, db_url: str, silent_dns: socket.socket
) -> None:
    host, port = silent_dns.getsockname()
    settings = make_settings(tmp_path, db_url, dns_nameservers=[f"{host}:{port}"], dns_timeout_seconds=3)
    with serve(settings) as (svc, server):
        t = make_tenant(svc)
        svc.tenancy.add_domain(t.id, "slow.example", actor="test")
        result: dict[str, Any] = {}

        def verify() -> None:
            result["reply"] = httpx.post(
                f"{server.url}/v1/domains/slow.example/verify", headers=bearer(t.api_key), timeout=20
            )

        worker = threading.Thread(target=verify)
        worker.start()
        silent_dns.recvfrom(4096)  # the verification now waits on DNS
        started = time.monotonic()
        meanwhile = httpx.get(f"{server.url}/v1/domains", headers=bearer(t.api_key), timeout=20)
        elapsed = time.monotonic() - started
        worker.join(20)
        assert meanwhile.status_code == 200
        assert elapsed < 1.5, f"a concurrent request waited {elapsed:.1f}s behind the DNS lookup"
        reply: httpx.Response = result["reply"]
        assert reply.status_code == 503
        assert reply.headers["content-type"] == PROBLEM
        assert "try again" in reply.json()["detail"]


def test_dns_servfail_on_verify_is_503_problem(tmp_path: Path, db_url: str) -> None:
    with DnsServer() as dns:
        dns.servfail("_sealmail.broken.example")
        host, port = dns.address
        settings = make_settings(tmp_path, db_url, dns_nameservers=[f"{host}:{port}"])
        with serve(settings) as (svc, server):
            t: TenantFixture = make_tenant(svc)
            svc.tenancy.add_domain(t.id, "broken.example", actor="test")
            reply = httpx.post(f"{server.url}/v1/domains/broken.example/verify", headers=bearer(t.api_key))
            assert reply.status_code == 503
            assert reply.json()["type"].endswith("/unavailable")


def test_public_links_are_limited_per_client_address(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, public_rate_limit_per_minute=3)
    with serve(settings) as (_, server):

        def hits() -> list[httpx.Response]:
            return [httpx.get(f"{server.url}/t/o/no-such-token") for _ in range(7)]

        replies = hits()
        assert replies[0].status_code == 200
        assert replies[0].headers["RateLimit-Policy"] == '"tracking";q=3;w=60'
        refused = [r for r in replies if r.status_code == 429]
        assert refused, [r.status_code for r in replies]
        assert_refusal(refused[0], "tracking", 3)
        unsubscribe = [httpx.get(f"{server.url}/u/no-such-token") for _ in range(7)]
        assert 429 in [r.status_code for r in unsubscribe]
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport) as other:
            assert other.get(f"{server.url}/t/o/no-such-token").status_code == 200
