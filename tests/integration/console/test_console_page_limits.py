"""Hammering the console's signed-in pages with one session gets a 429 page with ``Retry-After``
once the session's window is spent, on SQLite and PostgreSQL; another person's session (in
another tenant) and the static files are unaffected, and an address minting fresh cookies meets
the address's window (four times the session's)."""

from pathlib import Path

import httpx
import pytest
from tests.conftest import make_settings, make_tenant
from tests.integration.console.console_harness import Console, Person, enrol

from sealmail.app import Services
from sealmail.config import Settings
from sealmail.console.throttle import ADDRESS_FACTOR

LIMIT = 5
PAGES = ["/console/", "/console/users", "/console/keys", "/console/nowhere"]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, console_rate_limit_per_minute=LIMIT)


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-policy"].startswith('"console";')
    assert "Too many requests" in r.text and "<script" not in r.text
    # The console's hardening applies to the refusal too.
    assert "content-security-policy" in r.headers


def test_one_session_hammering_pages_gets_a_429_page_and_others_are_unaffected(
    console: Console, owner: Person, services: Services
) -> None:
    answers = [owner.http.get(PAGES[i % len(PAGES)]) for i in range(LIMIT + 2)]
    assert all(r.status_code != 429 for r in answers[:LIMIT]), [r.status_code for r in answers]
    for refused in answers[LIMIT:]:
        assert_refused(refused)
        assert refused.headers["ratelimit-policy"] == f'"console";q={LIMIT};w=60'
    # Posts count too: a state change from the hammering session is refused before it runs.
    assert_refused(owner.http.post("/console/keys", data={"csrf": "x", "name": "k"}))
    # Static files are not pages.
    assert owner.http.get("/console/static/console.css").status_code == 200
    # Someone else, in another tenant, from the same address, is counted on their own.
    other = make_tenant(services, "Other", "other.example")
    token = console.users.owner_link(other.id, "owner@other.example", actor="test")
    assert token
    someone = enrol(console, token, "owner@other.example")
    page = someone.http.get("/console/")
    assert page.status_code == 200, page.text


def test_fresh_cookies_from_one_address_meet_the_address_window(console: Console) -> None:
    # No session, a new made-up cookie each time: each would be a fresh session window, so the
    # address's window (ADDRESS_FACTOR × the session's) is what stops them.
    with console.client() as c:
        answers = [
            c.get("/console/", headers={"Cookie": f"sealmail_console=made-up-{i}"})
            for i in range(LIMIT * ADDRESS_FACTOR + 1)
        ]
    assert all(r.status_code != 429 for r in answers[:-1]), [r.status_code for r in answers]
    assert_refused(answers[-1])
    assert answers[-1].headers["ratelimit-policy"] == f'"console";q={LIMIT * ADDRESS_FACTOR};w=60'


def test_sign_in_steps_are_not_counted_as_pages(console: Console) -> None:
    # The sign-in form has its own per-step limit (console_signin_rate_limit_per_minute, 30).
    with console.client() as c:
        for _ in range(LIMIT + 3):
            assert c.get("/console/signin").status_code == 200
