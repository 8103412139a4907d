"""Retries and error parsing, driven by scripted answers (httpx.MockTransport): no server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from sealmail.client import AsyncSealmailClient, RetryPolicy, SealmailApiError, SealmailClient
from sealmail.client.types import OutgoingMessage

PROBLEM = {"content-type": "application/problem+json"}


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handler), seen


def busy(status: int = 503, retry_after: str | None = "1") -> httpx.Response:
    headers = dict(PROBLEM, **({"retry-after": retry_after} if retry_after else {}))
    return httpx.Response(
        status, headers=headers, json={"type": "x", "title": "Busy", "status": status, "detail": "later"}
    )


def test_503_and_429_are_retried_honouring_retry_after_with_the_same_idempotency_key() -> None:
    ok = httpx.Response(202, json={"id": "msg_1", "recipients": []})
    transport, seen = scripted(busy(503, "2"), busy(429, "1"), ok)
    waits: list[float] = []
    with SealmailClient("http://sm.test", "sm_k", transport=transport, sleep=waits.append) as sm:
        accepted = sm.send_message(OutgoingMessage(from_="a@b.example", to=["c@d.example"]))
    assert accepted["id"] == "msg_1"
    assert waits == [2.0, 1.0]
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1


def test_retries_are_bounded_and_the_last_problem_is_raised() -> None:
    transport, seen = scripted(*[busy(503, None) for _ in range(3)])
    waits: list[float] = []
    policy = RetryPolicy(max_retries=2, backoff=0.1)
    with SealmailClient(
        "http://sm.test", "sm_k", transport=transport, retry=policy, sleep=waits.append
    ) as sm:
        with pytest.raises(SealmailApiError) as info:
            sm.get_tenant()
    assert info.value.status == 503
    assert len(seen) == 3
    assert all(0 <= w <= 0.2 for w in waits) and len(waits) == 2


def test_a_retry_after_beyond_the_bound_is_not_waited_for() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    transport, seen = scripted(busy(429, when))
    waits: list[float] = []
    with SealmailClient("http://sm.test", "sm_k", transport=transport, sleep=waits.append) as sm:
        with pytest.raises(SealmailApiError) as info:
            sm.get_tenant()
    assert waits == [] and len(seen) == 1
    assert info.value.retry_after is not None and info.value.retry_after > 3000


def test_a_non_problem_error_body_still_raises_a_typed_error() -> None:
    transport, _ = scripted(httpx.Response(502, text="<html>bad gateway</html>"))
    with SealmailClient("http://sm.test", "sm_k", transport=transport) as sm:
        with pytest.raises(SealmailApiError) as info:
            sm.get_tenant()
    assert (info.value.status, info.value.type, info.value.title) == (502, "about:blank", "Bad Gateway")


def test_other_errors_are_not_retried() -> None:
    transport, seen = scripted(httpx.Response(500, headers=PROBLEM, json={"title": "Internal error"}))
    with SealmailClient("http://sm.test", "sm_k", transport=transport, sleep=lambda _: None) as sm:
        with pytest.raises(SealmailApiError):
            sm.get_tenant()
    assert len(seen) == 1


def test_async_client_retries_like_the_sync_one() -> None:
    transport, seen = scripted(
        busy(503, "0"), httpx.Response(200, json={"id": "t", "name": "n", "settings": {}})
    )

    async def no_wait(_: float) -> None:
        return None

    async def scenario() -> str:
        async with AsyncSealmailClient("http://sm.test", "sm_k", transport=transport, sleep=no_wait) as sm:
            return (await sm.get_tenant())["id"]

    assert asyncio.run(scenario()) == "t"
    assert len(seen) == 2
    assert seen[0].headers["authorization"] == "Bearer sm_k"
