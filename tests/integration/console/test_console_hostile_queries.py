"""Every console page, opened with hostile query strings (values FastAPI cannot convert, LIKE
wildcards, invalid UTF-8 escapes, NUL, bidi controls, huge numbers, markup), answers a page: never a
500, and a refusal is an HTML 4xx page that does not quote the value back (FastAPI's own 422 was
JSON echoing it). The route table is the role test's, so a new page is walked too."""

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from tests.conftest import make_settings
from tests.integration.console.console_harness import Person
from tests.integration.console.test_console_roles import PARAMS, ROUTES

from sealmail.config import Settings

BROWSER = "text/html,application/xhtml+xml,*/*;q=0.8"
# Every query name a console page reads, and a few it does not.
NAMES = [
    "page", "per_page", "sort", "q", "search", "cursor", "before", "after", "start", "offset",
    "version", "month", "period", "since", "until", "action", "actor", "address", "error", "format",
    "history", "saved", "status", "sender", "recipient_domain", "stream", "campaign", "next",
]  # fmt: skip
HOSTILE = [
    "-1", "9" * 5000, "1e999", "%25", "_", "%5C", "%FF", "%ED%A0%80", quote("\u202e\u2066"),
    "2026-13-45", quote('<script>alert(1)</script>"'), "x" * 3000, "%00",
]  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # The walk is a few hundred pages from one session: above the per-session page limit.
    return make_settings(tmp_path, db_url, console_rate_limit_per_minute=100_000)


def assert_a_page(r: httpx.Response, where: str) -> None:
    assert r.status_code < 500, (where, r.status_code, r.text[:300])
    assert "<script>alert" not in r.text, where
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("text/html"), (where, r.status_code, r.text[:300])
        assert "content-security-policy" in r.headers, where


def test_every_page_answers_hostile_query_strings_with_a_page(owner: Person) -> None:
    for (method, path), _ in ROUTES.items():
        if method != "GET" or path.startswith("/static/"):
            continue
        url = "/console" + path
        for name, value in PARAMS.items():
            url = url.replace(name, value or "usr_missing")
        for value in HOSTILE:
            names = NAMES if len(value) < 100 else NAMES[:6]
            query = "&".join(f"{n}={value}" for n in names)
            r = owner.http.get(f"{url}?{query}", headers={"Accept": BROWSER})
            assert_a_page(r, f"{url}?{value[:20]}")


def test_a_value_a_page_cannot_convert_is_a_400_page_that_says_what_to_do(owner: Person) -> None:
    for url in ("/console/audit?before=abc", "/console/audit/export.csv?since=2026-13-45",
                "/console/forms/form_missing?version=" + "9" * 5000):  # fmt: skip
        r = owner.http.get(url)
        assert r.status_code == 400, (url, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert "does not understand" in r.text and "abc" not in r.text
