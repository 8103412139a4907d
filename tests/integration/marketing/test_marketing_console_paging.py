"""The console's lists, segments, journeys and a contact's consent ledger show a bounded page
with a link to the next (keyset cursors, as the API), on SQLite and PostgreSQL: following the
links shows every row once in order, and a cursor the page never gave out is a 4xx page."""

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, console_server
from tests.integration.marketing.conftest import Keys
from tests.integration.marketing.test_marketing_console_campaigns import person
from tests.integration.marketing.test_marketing_paged_listings import consent_trail, fill

from sealmail.app import Services
from sealmail.console import marketing_campaign_pages, marketing_contact_pages, marketing_pages
from sealmail.users.roles import Role

ROWS = {
    "lists": re.compile(r'/marketing/lists/[^"]+"><bdi>([^<]+)</bdi>'),
    "segments": re.compile(r"<tr><td><bdi>([^<]+)</bdi></td><td>(\d+)</td>"),
    "journeys": re.compile(r"<tr><td><bdi>([^<]+)</bdi></td><td>(\d+)</td>"),
}


@pytest.fixture
def console(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    # Pages of two, so a handful of rows spans several (the sizes are read per request).
    monkeypatch.setattr(marketing_campaign_pages, "PAGE", 2)
    monkeypatch.setattr(marketing_contact_pages, "LISTS_PAGE", 2)
    monkeypatch.setattr(marketing_contact_pages, "HISTORY_PAGE", 2)
    monkeypatch.setattr(marketing_pages, "OVERVIEW", 2)
    with console_server(services) as c:
        yield c


def follow(http: httpx.Client, path: str, pattern: re.Pattern[str]) -> list[list[tuple[str, ...]]]:
    pages = []
    url = path
    for _ in range(20):
        r = http.get(url)
        assert r.status_code == 200, r.text[:300]
        pages.append([m if isinstance(m, tuple) else (m,) for m in pattern.findall(r.text)])
        nxt = re.search(r'href="[^"]*(\?cursor=[^"#]+)"', r.text)
        if not nxt:
            return pages
        url = path + nxt[1]
    raise AssertionError("the Next link never went away")


@pytest.mark.parametrize("what", ["lists", "segments", "journeys"])
def test_console_listings_come_a_page_at_a_time_with_a_next_link(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, what: str
) -> None:
    expected = [tuple(str(v) for v in row) for row in fill(client, declared.admin)[what]]
    http = person(console, tenant, Role.SENDER).http
    pages = follow(http, f"/console/marketing/{what}", ROWS[what])
    assert all(len(p) <= 2 for p in pages) and len(pages) == -(-len(expected) // 2)
    assert [row for page in pages for row in page] == expected
    bad = http.get(f"/console/marketing/{what}", params={"cursor": "garbage"})
    assert 400 <= bad.status_code < 500, bad.status_code


def test_a_contacts_consent_ledger_pages_back_to_its_first_event(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    cid = consent_trail(services, tenant, client, declared, 3)
    http = person(console, tenant, Role.SENDER).http
    url = f"/console/marketing/contacts/{cid}"
    newest = http.get(url)
    assert newest.status_code == 200
    assert "change 1" in newest.text and "change 2" in newest.text and "change 0" not in newest.text
    older = re.search(r'href="[^"]*(\?history=[^"#]+)#ledger">Older history', newest.text)
    assert older
    oldest = http.get(url + older[1])
    assert "change 0" in oldest.text and "change 2" not in oldest.text and "Older history" not in oldest.text
    assert 400 <= http.get(url, params={"history": "garbage"}).status_code < 500


def test_the_overview_shows_the_first_few_of_each_and_links_to_the_rest(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys
) -> None:
    fill(client, declared.admin)
    page = person(console, tenant, Role.SENDER).http.get("/console/marketing")
    assert page.status_code == 200
    assert re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td>", page.text) == [("s-a", "1"), ("s-a", "2")]
    assert re.findall(r"<li>List ([^:]+):", page.text) == ["alpha", "bravo"]
    assert len(re.findall(r"<li>Journey ", page.text)) == 2
    for what in ("segments", "lists", "journeys"):
        assert f'/marketing/{what}">All {what}</a>' in page.text
