"""The OpenAPI document describes every ``/v1`` operation completely.

Schemathesis (``test_openapi_schemathesis.py``) checks that responses match the document;
it cannot notice what the document leaves out: a free-form ``{}`` success body matches
anything, and a problem response without a schema is never checked.  These tests walk
``app.openapi()`` and require, for every operation under ``/v1``:

- a summary and at least one tag;
- a 2xx response whose JSON body has a schema with named properties (a CSV or bytes body:
  a typed schema under its own media type), unless the status is 204;
- the problem responses it can produce (401 always, 422 when it takes input), each under
  ``application/problem+json`` with the ``Problem`` schema.

New routers must comply too: the walk covers whatever is mounted under ``/v1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from tests.conftest import make_settings, make_tenant

from sealmail.app import Services, build_services
from sealmail.intake.api.app import create_api

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_JSON = "application/problem+json"
METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture
def api(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[FastAPI, Services]]:
    # The document does not depend on the engine; SQLite builds the app fastest.
    svc = build_services(make_settings(tmp_path, sqlite_url, portal_on_api=False))
    yield create_api(svc), svc
    svc.close()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/") and path != "/v1":
            continue
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.removeprefix("#/components/schemas/")
    resolved: dict[str, Any] = doc["components"]["schemas"][name]
    return resolved


def _specific(doc: dict[str, Any], schema: dict[str, Any] | None) -> bool:
    """A schema that says what the body holds: named properties, or items that do."""
    if not schema:
        return False
    schema = _resolve(doc, schema)
    if schema.get("properties"):
        return True
    if schema.get("type") == "array":
        return _specific(doc, schema.get("items"))
    alternatives = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if alternatives:
        return all(_specific(doc, s) or s.get("type") == "null" for s in alternatives)
    return False


def _success_gaps(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
    if not successes:
        return ["no 2xx response"]
    gaps = []
    for code, response in successes.items():
        if code == "204":
            if response.get("content"):
                gaps.append("204 documents a body")
            continue
        content = response.get("content") or {}
        if not content:
            gaps.append(f"{code} has no body schema")
        for media, body in content.items():
            schema = body.get("schema")
            if "json" not in media:
                # CSV, bytes: a typed schema (``string``) is all a document can say.
                if not (schema or {}).get("type"):
                    gaps.append(f"{code} {media} has no schema")
                continue
            if not _specific(doc, schema):
                gaps.append(f"{code} {media} schema is free-form: {body.get('schema')}")
    return gaps


def _problem_gaps(op: dict[str, Any]) -> list[str]:
    responses = op["responses"]
    needed = {"401"}
    if op.get("parameters") or op.get("requestBody"):
        needed.add("422")
    gaps = [f"{code} not documented" for code in sorted(needed - set(responses))]
    for code, response in responses.items():
        if not code.startswith("4"):
            continue
        content = response.get("content")
        if content is None:
            continue  # a documented empty body (416 on a download)
        schema = (content.get(PROBLEM_JSON) or {}).get("schema")
        if schema != {"$ref": PROBLEM_REF}:
            gaps.append(f"{code} lacks the Problem schema under {PROBLEM_JSON}: {content}")
    return gaps


def test_every_v1_operation_documents_its_success_body(api: tuple[FastAPI, Services]) -> None:
    doc = api[0].openapi()
    gaps = {label: g for label, op in _operations(doc) if (g := _success_gaps(doc, op))}
    assert not gaps, "\n".join(f"{label}: {'; '.join(g)}" for label, g in sorted(gaps.items()))


def test_every_v1_operation_has_a_summary_and_a_tag(api: tuple[FastAPI, Services]) -> None:
    doc = api[0].openapi()
    missing = [
        label for label, op in _operations(doc) if not (op.get("summary") or "").strip() or not op.get("tags")
    ]
    assert not missing, missing


def test_every_v1_operation_documents_its_problem_responses(api: tuple[FastAPI, Services]) -> None:
    doc = api[0].openapi()
    gaps = {label: g for label, op in _operations(doc) if (g := _problem_gaps(op))}
    assert not gaps, "\n".join(f"{label}: {'; '.join(g)}" for label, g in sorted(gaps.items()))
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


def test_no_v1_route_is_hidden_from_the_document(api: tuple[FastAPI, Services]) -> None:
    app = api[0]
    documented = {label for label, _ in _operations(app.openapi())}
    routes = {
        f"{method} {route.path}"
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/v1")
        for method in route.methods or ()
        if method.lower() in METHODS
    }
    assert routes, "no /v1 routes found"
    assert routes <= documented, sorted(routes - documented)


def test_problem_bodies_are_sent_under_the_documented_media_type(api: tuple[FastAPI, Services]) -> None:
    """The document puts the Problem schema under application/problem+json: that must be
    what a client actually receives, for a library-raised 404 and a validation 422 alike."""
    app, svc = api
    tenant = make_tenant(svc)
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    with TestClient(app) as http:
        missing = http.get("/v1/messages/msg_nope", headers=auth)
        invalid = http.post("/v1/webhook-endpoints", json={"url": 5}, headers=auth)
        anonymous = http.get("/v1/webhook-endpoints")
    for resp, status in ((missing, 404), (invalid, 422), (anonymous, 401)):
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM_JSON)
        assert {"type", "title", "status", "detail"} <= set(resp.json())


# Integers a client sends that never reach an integer column, each with why it may be
# unbounded.  Anything else needs a documented ``maximum``: PostgreSQL's INTEGER stops at
# 2**31 - 1 and SQLite's at 2**63 - 1, so an unbounded one reached the driver as a 500
# (a campaign variant's ``version`` of 2**31 on PostgreSQL, 2**63 on SQLite).
UNBOUNDED_OK = {
    "ReviewSettingsIn.start": "range-checked by the review settings' own function, kept as JSON",
    "ReviewSettingsIn.end": "range-checked by the review settings' own function, kept as JSON",
    "ReviewSettingsIn.weekdays[]": "range-checked by the review settings' own function, kept as JSON",
    "ReviewSettingsIn.large_reads": "range-checked by the review settings' own function, kept as JSON",
    "TenantSettingsIn.rate_limit": "kept as JSON; the guard takes min(it, max_per_minute)",
    "GET /v1/quarantine ?limit": "clamped to 1..500 by the route",
    "ContactIn.attributes{}": "a finite-number check of its own (marketing), kept as JSON",
}


def _unbounded(doc: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]) -> Iterator[str]:
    ref = schema.get("$ref")
    if ref is not None:
        name = ref.removeprefix("#/components/schemas/").rpartition("__")[2]
        if name in seen:
            return
        seen = seen | {name}
        where = name
        schema = _resolve(doc, schema)
    if schema.get("type") == "integer" and "maximum" not in schema and "exclusiveMaximum" not in schema:
        yield where
    for alt in (*schema.get("anyOf", ()), *schema.get("oneOf", ()), *schema.get("allOf", ())):
        yield from _unbounded(doc, alt, where, seen)
    for prop, sub in schema.get("properties", {}).items():
        yield from _unbounded(doc, sub, f"{where}.{prop}", seen)
    if isinstance(schema.get("items"), dict):
        yield from _unbounded(doc, schema["items"], f"{where}[]", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _unbounded(doc, schema["additionalProperties"], f"{where}{{}}", seen)


def test_every_integer_a_client_sends_has_a_maximum(api: tuple[FastAPI, Services]) -> None:
    doc = api[0].openapi()
    found: set[str] = set()
    for label, op in _operations(doc):
        for param in op.get("parameters", ()):
            found |= set(_unbounded(doc, param.get("schema", {}), f"{label} ?{param['name']}", set()))
        for media in op.get("requestBody", {}).get("content", {}).values():
            found |= set(_unbounded(doc, media.get("schema", {}), label, set()))
    assert sorted(found - UNBOUNDED_OK.keys()) == []
    assert sorted(UNBOUNDED_OK.keys() - found) == []  # the list names only what is there
