"""Hostile request bodies on every ``/v1`` route, on SQLite and PostgreSQL: a chunked body
past the size limit (no Content-Length to refuse up front) and NUL in a JSON string.

Both were seen by the routes as an error reading or storing the body: a chunked oversize
was ``400 There was an error parsing the body`` (FastAPI's answer to any exception while
reading), and NUL reached PostgreSQL wherever a route had not checked for it
(``POST /v1/evidence/holds`` answered 500).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.intake.api.app import create_api
from sealmail.marketing.tables import mkt_contacts
from sealmail.store.tables import messages

MESSAGE = b'{"from": "noreply@clinic.example", "to": ["patient@example.net"], "text": "%s"}'


@pytest.fixture
def client(services: Services) -> TestClient:
    services.settings.max_request_bytes = 50_000
    return TestClient(create_api(services), raise_server_exceptions=False)


def headers(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}", "Content-Type": "application/json"}


def count(services: Services, table: sa.Table) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def chunked(*parts: bytes) -> Iterator[bytes]:
    # A generator body is sent with Transfer-Encoding: chunked and no Content-Length.
    yield from parts


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/webhook-endpoints", "/v1/evidence/holds"])
def test_a_chunked_body_past_the_limit_is_a_413_problem(
    client: TestClient, services: Services, tenant: TenantFixture, path: str
) -> None:
    head, tail = MESSAGE.split(b"%s")
    body = chunked(head, *([b"x" * 10_000] * 6), tail)
    r = client.post(path, content=body, headers=headers(tenant))
    assert r.status_code == 413, r.text[:300]
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("payload-too-large")
    assert count(services, messages) == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", MESSAGE % b"x\\u0000y"),
        ("/v1/messages", b'{"from": "noreply@clinic.example", "to": ["p@example.net"], "text": "x", '
                         b'"metadata": {"k\\u0000": "v"}}'),
        ("/v1/evidence/holds", b'{"scope": "tenant", "reason": "audit \\\\\\u0000"}'),
        ("/v1/webhook-endpoints", b'{"url": "https://hooks.example/in", "description": "\\u0000"}'),
    ],
)  # fmt: skip
def test_nul_in_any_json_string_is_a_422_problem_and_nothing_is_stored(
    client: TestClient, services: Services, tenant: TenantFixture, path: str, body: bytes
) -> None:
    r = client.post(path, content=body, headers=headers(tenant))
    assert r.status_code == 422, r.text[:300]
    assert r.headers["content-type"] == "application/problem+json"
    assert "must not contain NUL" in r.json()["detail"]
    assert count(services, messages) == 0
    assert client.get("/v1/evidence/holds", headers=headers(tenant)).json() == []


def test_a_nul_escape_split_across_chunks_is_found_and_an_escaped_backslash_is_not_one(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    head, tail = MESSAGE.split(b"%s")
    split = chunked(head, b"x\\u00", b"00y", tail)
    r = client.post("/v1/messages", content=split, headers=headers(tenant))
    assert r.status_code == 422, r.text[:300]
    # "\\u0000" in JSON is a backslash and "u0000": text, not NUL.
    r = client.post("/v1/messages", content=MESSAGE % b"see \\\\u0000", headers=headers(tenant))
    assert r.status_code == 202, r.text[:300]
    got = client.get(f"/v1/messages/{r.json()['id']}/content", headers=headers(tenant))
    assert got.json()["text"].strip() == "see \\u0000"
    assert count(services, messages) == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_json_not_in_utf8_is_a_400_so_no_nul_escape_slips_past_in_it(
    client: TestClient, tenant: TenantFixture, encoding: str
) -> None:
    # The JSON decoder takes UTF-16 and UTF-32 too; a NUL escape in them is not the bytes
    # "\\u0000", and reached PostgreSQL as a 500 (POST /v1/evidence/holds).
    body = '{"scope": "tenant", "reason": "audit \\u0000"}'.encode(encoding)
    r = client.post("/v1/evidence/holds", content=body, headers=headers(tenant))
    assert r.status_code == 400, r.text[:300]
    assert "UTF-8" in r.json()["detail"]
    assert client.get("/v1/evidence/holds", headers=headers(tenant)).json() == []


def test_dlp_settings_of_the_wrong_shape_are_a_422_and_nothing_is_saved(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    # ``dlp`` is free-form JSON: a nested list among the keywords reached ``str.strip``, a list
    # for ``actions`` reached ``dict()`` — 500s — and a string became one keyword per letter.
    for dlp in (
        {"keywords": [["PHI"]]},
        {"keywords": "PHI"},
        {"mrn_patterns": [123]},
        {"actions": ["ssn", "block"]},
        {"thresholds": [1]},
        {"default_action": {"block": True}},
    ):
        r = client.patch("/v1/tenant/policy", json={"dlp": dlp}, headers=headers(tenant))
        assert r.status_code == 422, (dlp, r.text[:300])
        assert r.json()["errors"][0]["field"].startswith("dlp"), r.json()
    assert "dlp" not in services.tenancy.get_tenant(tenant.id).settings


@pytest.mark.parametrize(
    "text",
    [b"\\ud800", b"x\\uDBFFy", b"\\udc00", b"\\ud83d\\u0041", b"\\\\\\udfff", b"\\ud83d\\ud83d"],
)
def test_half_a_surrogate_pair_in_a_json_string_is_a_422_and_nothing_is_stored(
    client: TestClient, tenant: TenantFixture, services: Services, text: bytes
) -> None:
    # The decoder made a str with no UTF-8 form: it was stored, then every answer carrying
    # it failed (a 500; a contact export cut off mid-stream), or PostgreSQL's jsonb refused it.
    city = {"name": "city", "type": "text", "phi_class": "demographic"}
    assert client.post("/v1/marketing/attributes", json=city, headers=headers(tenant)).status_code == 201
    body = b'{"email": "s@example.net", "attributes": {"city": "%s"}}' % text
    r = client.post("/v1/marketing/contacts", content=body, headers=headers(tenant))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "surrogate" in r.json()["errors"][0]["message"]
    assert count(services, mkt_contacts) == 0


def test_a_whole_surrogate_pair_or_an_escaped_backslash_before_ud800_is_text(
    client: TestClient, tenant: TenantFixture
) -> None:
    for text, stored in ((b"\\ud83d\\ude00", "\U0001f600"), (b"see \\\\ud800", "see \\ud800")):
        r = client.post("/v1/messages", content=MESSAGE % text, headers=headers(tenant))
        assert r.status_code == 202, r.text
        got = client.get(f"/v1/messages/{r.json()['id']}/content", headers=headers(tenant))
        assert got.json()["text"].strip() == stored
