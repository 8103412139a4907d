"""Hammering the console's sign-in steps (password, second factor, passkey, SSO start and
callback, one-time links, enrolment) from one address gets 429 with ``Retry-After`` once the
per-step window is spent, on SQLite and PostgreSQL; another address, another step and the
signed-in pages are unaffected."""

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.conftest import make_settings
from tests.integration.console.console_harness import Console, Person

from sealmail.config import Settings

LIMIT = 3
STEPS: list[tuple[str, str]] = [
    ("GET", "/console/signin"),
    ("POST", "/console/signin"),
    ("GET", "/console/signin/code"),
    ("POST", "/console/signin/code"),
    ("POST", "/console/signin/passkey"),
    ("POST", "/console/signin/sso"),
    ("GET", "/console/sso/callback?state=x&code=y"),
    ("GET", "/console/welcome/not-a-token"),
    ("GET", "/console/enroll"),
    ("POST", "/console/enroll"),
]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, console_signin_rate_limit_per_minute=LIMIT)


def from_address(console: Console, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=console.url, transport=transport, follow_redirects=False, timeout=30)


def hammer(call: Callable[[], httpx.Response], times: int) -> list[httpx.Response]:
    return [call() for _ in range(times)]


@pytest.mark.parametrize(("method", "path"), STEPS)
def test_each_sign_in_step_answers_429_with_retry_after_once_hammered(
    console: Console, method: str, path: str
) -> None:
    with from_address(console, "127.0.0.1") as c:
        answers = hammer(lambda: c.request(method, path, data={"email": "a@clinic.example"}), LIMIT + 2)
        # The step's own answers first (a form, a redirect, a refusal of a bad form or link) …
        assert all(r.status_code != 429 for r in answers[:LIMIT]), [r.status_code for r in answers]
        # … then the limit, for the rest of the window.
        for refused in answers[LIMIT:]:
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert refused.headers["ratelimit-policy"] == f'"console-signin";q={LIMIT};w=60'
            assert "too many sign-in requests" in refused.json()["detail"]
        # Another step from the same address still answers.
        other = "/console/welcome/x" if path != "/console/welcome/not-a-token" else "/console/signin"
        assert c.get(other).status_code != 429
    # Another address is counted on its own.
    with from_address(console, "127.0.0.2") as c:
        assert c.request(method, path, data={}).status_code != 429


def test_signed_in_pages_are_not_counted_as_sign_in_steps(console: Console, owner: Person) -> None:
    # The owner fixture enrolled through a link and the enrolment step; pages after that are free.
    for _ in range(LIMIT + 3):
        assert owner.http.get("/console/").status_code == 200
    assert owner.http.get("/console/static/console.css").status_code == 200
