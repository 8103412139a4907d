"""The OSV client against a hostile loopback server: huge, slow, malformed or lying answers
are refused with a ServiceUnavailable, bounded in size and time, and never half-read; the
client reaches no host but the configured one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from tests.support.ca import TestCA
from tests.support.https_server import Route
from tests.support.osv_server import OsvServer, advisory

from sealmail.errors import ServiceUnavailable
from sealmail.evidence import osv as osv_module
from sealmail.evidence.osv import OsvClient, Pinned, Severity
from sealmail.net.http_client import FetchError, FetchReason, SafeHttpClient

pytestmark = pytest.mark.timeout(30)
JSON = {"Content-Type": "application/json"}
PIN = Pinned("jinja2", "2.4")


@pytest.fixture
def server(ca: TestCA) -> Iterator[OsvServer]:
    with OsvServer(ca) as s:
        yield s


def client(ca: TestCA, server: OsvServer, timeout: float = 5.0) -> OsvClient:
    http = SafeHttpClient(
        None, allow_loopback=True, ca_file=ca.ca_file, timeout=timeout, only_hosts=["127.0.0.1"]
    )
    return OsvClient(http, server.url)


def refused(c: OsvClient, pins: list[Pinned] | None = None) -> str:
    with pytest.raises(ServiceUnavailable) as info:
        asyncio.run(c.scan(pins or [PIN]))
    return info.value.detail


def answer(server: OsvServer, body: bytes, status: int = 200, delay: float = 0.0) -> None:
    server.web.set_handler("/v1/querybatch", lambda _body: Route(status, body, JSON, delay))


def test_a_clean_answer_is_parsed(ca: TestCA, server: OsvServer) -> None:
    server.add(advisory("GHSA-aaaa-0001", "jinja2", ["2.4"], fixed="2.10.1", severity="MODERATE"))
    [found] = asyncio.run(client(ca, server).scan([PIN, Pinned("idna", "3.0")]))
    assert (found.id, found.package, found.version) == ("GHSA-aaaa-0001", "jinja2", "2.4")
    assert found.fixed_in == ("2.10.1",) and found.severity is Severity.MODERATE


def test_malformed_json_is_refused(ca: TestCA, server: OsvServer) -> None:
    answer(server, b'{"results": [')
    assert "not JSON" in refused(client(ca, server))
    answer(server, json.dumps({"results": "nope"}).encode())
    assert "does not match the queries" in refused(client(ca, server))
    answer(server, json.dumps({"results": [{}, {}]}).encode())  # two answers to one query
    assert "does not match the queries" in refused(client(ca, server))
    answer(server, json.dumps({"results": [{"vulns": [{"id": 7}]}]}).encode())
    assert "not one" in refused(client(ca, server))
    answer(server, b"[]", status=500)
    assert "HTTP 500" in refused(client(ca, server))


def test_an_id_that_would_leave_the_api_path_is_refused(ca: TestCA, server: OsvServer) -> None:
    answer(server, json.dumps({"results": [{"vulns": [{"id": "../../admin"}]}]}).encode())
    assert "not one" in refused(client(ca, server))
    assert [path for path, _ in server.web.requests] == []  # no GET was made


def test_a_huge_answer_is_cut_off(ca: TestCA, server: OsvServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osv_module, "BATCH_MAX_BYTES", 10_000)
    answer(server, b'{"results": [{"vulns": []}], "pad": "' + b"x" * 20_000 + b'"}')
    assert "unreachable (too_large)" in refused(client(ca, server))


def test_too_many_advisories_are_refused(
    ca: TestCA, server: OsvServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(osv_module, "MAX_ADVISORIES", 3)
    vulns = [{"id": f"GHSA-x-{i}"} for i in range(4)]
    answer(server, json.dumps({"results": [{"vulns": vulns}]}).encode())
    assert "more than 3 advisories" in refused(client(ca, server))


def test_a_server_paging_forever_is_refused(ca: TestCA, server: OsvServer) -> None:
    page = {"results": [{"vulns": [{"id": "GHSA-p-1"}], "next_page_token": "again"}]}
    answer(server, json.dumps(page).encode())
    assert f"more than {osv_module.MAX_PAGES} pages" in refused(client(ca, server))
    assert len(server.web.posts) == osv_module.MAX_PAGES
    sent = json.loads(server.web.posts[-1][2])
    assert sent["queries"][0]["page_token"] == "again"


def test_a_slow_server_meets_the_deadline(ca: TestCA, server: OsvServer) -> None:
    answer(server, json.dumps({"results": [{}]}).encode(), delay=3.0)
    assert "unreachable (timeout)" in refused(client(ca, server, timeout=0.5))


def test_a_bad_advisory_document_is_refused(ca: TestCA, server: OsvServer) -> None:
    answer(server, json.dumps({"results": [{"vulns": [{"id": "GHSA-bad-1"}]}]}).encode())
    server.web.set_route("/v1/vulns/GHSA-bad-1", Route(200, b"<html>", JSON))
    assert "advisory GHSA-bad-1 that is not JSON" in refused(client(ca, server))
    server.web.set_route("/v1/vulns/GHSA-bad-1", Route(200, b'{"id": "../x"}', JSON))
    assert "without a valid id" in refused(client(ca, server))


def test_the_client_reaches_only_the_configured_host(ca: TestCA, server: OsvServer) -> None:
    http = SafeHttpClient(None, allow_loopback=True, ca_file=ca.ca_file, only_hosts=["api.osv.dev"])
    with pytest.raises(FetchError) as info:
        asyncio.run(http.get(f"{server.url}/v1/vulns/X"))
    assert (
        info.value.reason is FetchReason.BAD_URL and "not a host this client may reach" in info.value.detail
    )
    assert server.web.requests == []
