"""Lists, segments, journeys and the consent ledger come a bounded page at a time, on SQLite
and PostgreSQL: walking the cursors shows every row exactly once in order, the last page
says so (``next_cursor`` null), a cursor the listing never gave out is a 422 problem, and
nothing of another tenant shows (issue 16 audit: every page bounded in memory and time)."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys, keys_for

from sealmail.app import Services

P = "/v1/marketing"
RULE = {"attr": "plan", "op": "eq", "value": "gold"}
JOURNEY = {"trigger": {"type": "api_event", "event": "booked"}, "steps": [{"wait": {"hours": 2}}]}


def walk(
    client: TestClient, url: str, h: dict[str, str], limit: int, cursor: str = ""
) -> list[list[dict[str, Any]]]:
    """Every page of ``url`` from ``cursor``, following ``next_cursor`` until it is null."""
    pages = []
    for _ in range(50):  # a cursor that never ends would fail here, not hang
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = client.get(url, params=params, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        page = body["data"] if "data" in body else body["history"]
        assert len(page) <= limit
        pages.append(page)
        if not (cursor := body["next_cursor"]):
            return pages
        assert len(page) == limit  # only a full page may promise another
    raise AssertionError("next_cursor never came back null")


def fill(client: TestClient, h: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """Five lists, three segments of two versions and two journeys of three versions, saved
    out of order so that insertion order is not the answer."""
    for name in ("delta", "alpha", "echo", "charlie", "bravo"):
        assert client.post(f"{P}/lists", json={"name": name}, headers=h).status_code == 201
    for _ in range(2):
        for name in ("s-c", "s-a", "s-b"):
            assert (
                client.post(f"{P}/segments", json={"name": name, "rule": RULE}, headers=h).status_code == 201
            )
    for _ in range(3):
        for name in ("j-b", "j-a"):
            body = {"name": name, "definition": JOURNEY}
            assert client.post(f"{P}/journeys", json=body, headers=h).status_code == 201
    return {
        "lists": [(n,) for n in ("alpha", "bravo", "charlie", "delta", "echo")],
        "segments": [(n, v) for n in ("s-a", "s-b", "s-c") for v in (1, 2)],
        "journeys": [(n, v) for n in ("j-a", "j-b") for v in (1, 2, 3)],
    }


KEY: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    "lists": lambda r: (r["name"],),
    "segments": lambda r: (r["name"], r["version"]),
    "journeys": lambda r: (r["name"], r["version"]),
}


@pytest.mark.parametrize("what", ["lists", "segments", "journeys"])
def test_walking_the_pages_shows_every_row_once_in_order(
    client: TestClient, declared: Keys, what: str
) -> None:
    expected = fill(client, declared.admin)[what]
    pages = walk(client, f"{P}/{what}", declared.reader, limit=2)
    assert len(pages) == -(-len(expected) // 2)
    rows = [row for page in pages for row in page]
    assert [KEY[what](r) for r in rows] == expected
    assert len({r["id"] for r in rows}) == len(expected)
    # One page big enough for all is the same rows, and says it is the last.
    whole = client.get(f"{P}/{what}", headers=declared.reader).json()
    assert whole["data"] == rows and whole["next_cursor"] is None


def test_a_row_saved_between_pages_is_neither_skipped_nor_repeated(
    client: TestClient, declared: Keys
) -> None:
    fill(client, declared.admin)
    first = client.get(f"{P}/lists", params={"limit": 2}, headers=declared.reader).json()
    assert [r["name"] for r in first["data"]] == ["alpha", "bravo"]
    for name in ("aardvark", "cobra"):  # one before the cursor, one after it
        client.post(f"{P}/lists", json={"name": name}, headers=declared.admin)
    rest = walk(client, f"{P}/lists", declared.reader, limit=2, cursor=first["next_cursor"])
    assert [r["name"] for page in rest for r in page] == ["charlie", "cobra", "delta", "echo"]


def test_a_list_page_keeps_member_counts(client: TestClient, declared: Keys) -> None:
    h = declared.admin
    client.post(f"{P}/lists", json={"name": "vip"}, headers=h)
    ids = [
        client.post(f"{P}/contacts", json={"email": f"m{i}@example.net"}, headers=h).json()["id"]
        for i in range(3)
    ]
    client.post(f"{P}/lists/vip/members", json={"contact_ids": ids}, headers=h)
    page = client.get(f"{P}/lists", params={"limit": 1}, headers=declared.reader).json()
    assert page["data"][0]["members"] == 3 and page["next_cursor"] is None


def consent_trail(services: Services, tenant: TenantFixture, client: TestClient, keys: Keys, n: int) -> str:
    cid = client.post(f"{P}/contacts", json={"email": "ledger@example.net"}, headers=keys.sender).json()["id"]
    for i in range(n):
        services.marketing.consent.change(
            tenant.id, cid, purpose="fundraising", channel="email",
            action="revoke" if i % 2 else "grant", source="api", actor="test", evidence=f"change {i}",
        )  # fmt: skip
    return cid


def test_the_consent_ledger_pages_back_to_its_first_event(
    client: TestClient, declared: Keys, services: Services, tenant: TenantFixture
) -> None:
    cid = consent_trail(services, tenant, client, declared, 7)
    url = f"{P}/contacts/{cid}/consent"
    pages = walk(client, url, declared.reader, limit=3)
    # Newest page first, each page oldest first: reversed, they are the ledger in order.
    assert [[e["evidence"] for e in p] for p in pages] == [
        ["change 4", "change 5", "change 6"],
        ["change 1", "change 2", "change 3"],
        ["change 0"],
    ]
    every = [e for page in reversed(pages) for e in page]
    assert len({e["id"] for e in every}) == 7
    # The current state rides along on every page, unchanged by paging.
    older = client.get(url, params={"limit": 3, "cursor": pages[0][0]["id"]}, headers=declared.reader).json()
    assert older["consents"] == client.get(url, headers=declared.reader).json()["consents"]
    assert older["consents"][0]["state"] == "granted"
    whole = client.get(url, headers=declared.reader).json()
    assert whole["history"] == every and whole["next_cursor"] is None

    # The service's whole-ledger read follows the same cursors, a small page at a time.
    assert services.marketing.consent.ledger(tenant.id, cid, page=2) == every


def problem(r: Any, status: int) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"


@pytest.fixture
def two_tenants(
    client: TestClient, declared: Keys, services: Services, tenant: TenantFixture, other_tenant: TenantFixture
) -> tuple[str, Keys]:
    """This tenant's rows and a contact with a ledger; the other tenant's keys."""
    fill(client, declared.admin)
    return consent_trail(services, tenant, client, declared, 2), keys_for(services, other_tenant)


def test_bad_cursors_and_sizes_are_422_problems_never_500s(
    client: TestClient, declared: Keys, two_tenants: tuple[str, Keys]
) -> None:
    cid, other = two_tenants
    plan = {"name": "plan", "type": "choice", "phi_class": "none", "choices": ["gold", "silver"]}
    assert client.post(f"{P}/attributes", json=plan, headers=other.admin).status_code == 201
    theirs = {
        "lists": client.post(f"{P}/lists", json={"name": "theirs"}, headers=other.admin).json()["id"],
        "segments": client.post(
            f"{P}/segments", json={"name": "t", "rule": RULE}, headers=other.admin
        ).json()["id"],
        "journeys": client.post(
            f"{P}/journeys", json={"name": "t", "definition": JOURNEY}, headers=other.admin
        ).json()["id"],
    }
    mine = {w: client.get(f"{P}/{w}", headers=declared.reader).json()["data"][0]["id"] for w in theirs}
    urls = [f"{P}/lists", f"{P}/segments", f"{P}/journeys", f"{P}/contacts/{cid}/consent"]
    for url in urls:
        for cursor in ("garbage", "' OR 1=1 --", "x" * 41, *theirs.values()):
            problem(client.get(url, params={"cursor": cursor}, headers=declared.reader), 422)
        for limit in (0, 1001, -1):
            problem(client.get(url, params={"limit": limit}, headers=declared.reader), 422)
    # A cursor from one listing is no cursor for another (a list id is not a segment).
    problem(client.get(f"{P}/segments", params={"cursor": mine["lists"]}, headers=declared.reader), 422)
    # Another contact's ledger event is no cursor for this contact's ledger.
    event = client.get(f"{P}/contacts/{cid}/consent", headers=declared.reader).json()["history"][0]["id"]
    other_cid = client.post(f"{P}/contacts", json={"email": "b@example.net"}, headers=declared.sender).json()[
        "id"
    ]
    problem(
        client.get(f"{P}/contacts/{other_cid}/consent", params={"cursor": event}, headers=declared.reader),
        422,
    )


def test_another_tenants_rows_never_show_and_its_contacts_ledger_is_404(
    client: TestClient, declared: Keys, two_tenants: tuple[str, Keys]
) -> None:
    cid, other = two_tenants
    for what in ("lists", "segments", "journeys"):
        assert client.get(f"{P}/{what}", headers=other.reader).json() == {"data": [], "next_cursor": None}
    problem(client.get(f"{P}/contacts/{cid}/consent", headers=other.reader), 404)
    problem(client.get(f"{P}/contacts/{cid}/consent", params={"limit": 1}, headers=other.reader), 404)
