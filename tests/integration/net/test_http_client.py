"""SafeHttpClient against loopback HTTPS, HTTP and DNS servers.

The client connects to the vetted IP (loopback here, via ``host_overrides`` or the
test DNS server) while SNI, the Host header and the certificate check use the name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.https_server import HttpsServer
from tests.support.ports import unused_port

from sealmail.net.dns import Resolver
from sealmail.net.http_client import FetchError, FetchReason, SafeHttpClient

pytestmark = pytest.mark.timeout(30)
HOST = "openpgpkey.example.org"


@pytest.fixture(scope="module")
def ca() -> Iterator[TestCA]:
    with TestCA() as test_ca:
        yield test_ca


@pytest.fixture
def web(ca: TestCA) -> Iterator[HttpsServer]:
    with HttpsServer(ca.issue(HOST, "example.org")) as server:
        yield server


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


def client_for(ca: TestCA, web: HttpsServer, **kwargs: Any) -> SafeHttpClient:
    options: dict[str, Any] = {
        "allow_loopback": True,
        "ca_file": ca.ca_file,
        "host_overrides": {HOST: web.address},
        "timeout": 5.0,
    }
    options.update(kwargs)
    return SafeHttpClient(None, **options)


def fetch_error(coro: Awaitable[object]) -> FetchError:
    async def run() -> object:
        return await coro

    with pytest.raises(FetchError) as info:
        asyncio.run(run())
    return info.value


def test_name_is_used_for_tls_and_host_while_the_socket_goes_to_the_vetted_ip(
    ca: TestCA, web: HttpsServer
) -> None:
    web.set_text("/hello", "hi\n")
    response = asyncio.run(client_for(ca, web).get(f"https://{HOST}/hello?l=joe", accept="text/plain"))
    assert (response.status, response.body, response.media_type) == (200, b"hi\n", "text/plain")
    assert response.url == f"https://{HOST}/hello?l=joe"
    assert web.requests == [("/hello?l=joe", HOST)]


def test_loopback_is_refused_by_default(ca: TestCA, web: HttpsServer) -> None:
    web.set_text("/hello", "hi\n")
    error = fetch_error(client_for(ca, web, allow_loopback=False).get(f"https://{HOST}/hello"))
    assert error.reason is FetchReason.BLOCKED_ADDRESS
    assert "loopback" in error.detail
    assert web.requests == []


def test_loopback_ip_literal_is_refused_by_default(ca: TestCA, web: HttpsServer) -> None:
    error = fetch_error(SafeHttpClient(None, ca_file=ca.ca_file).get(f"https://127.0.0.1:{web.port}/"))
    assert error.reason is FetchReason.BLOCKED_ADDRESS
    assert web.requests == []


def test_a_certificate_for_another_name_fails_with_tls_error(ca: TestCA) -> None:
    with HttpsServer(ca.issue_wrong_name()) as wrong:
        wrong.set_text("/hello", "hi\n")
        error = fetch_error(client_for(ca, wrong).get(f"https://{HOST}/hello"))
        assert error.reason is FetchReason.TLS_ERROR
        assert wrong.requests == []


def test_a_certificate_from_an_untrusted_ca_fails_with_tls_error(ca: TestCA) -> None:
    with TestCA() as other_ca, HttpsServer(other_ca.issue(HOST)) as untrusted:
        error = fetch_error(client_for(ca, untrusted).get(f"https://{HOST}/"))
        assert error.reason is FetchReason.TLS_ERROR


def test_an_expired_certificate_fails_with_tls_error(ca: TestCA) -> None:
    with HttpsServer(ca.issue_expired(HOST)) as expired:
        error = fetch_error(client_for(ca, expired).get(f"https://{HOST}/"))
        assert error.reason is FetchReason.TLS_ERROR


def test_redirects_are_returned_not_followed(ca: TestCA, web: HttpsServer) -> None:
    web.set_redirect("/old", f"https://{HOST}/new")
    web.set_text("/new", "moved\n")
    response = asyncio.run(client_for(ca, web).get(f"https://{HOST}/old"))
    assert response.status == 301
    assert response.is_redirect
    assert response.headers["location"] == f"https://{HOST}/new"
    assert [path for path, _ in web.requests] == ["/old"]


def test_a_declared_oversize_body_is_refused(ca: TestCA, web: HttpsServer) -> None:
    web.set_text("/big", "x" * 5000)
    error = fetch_error(client_for(ca, web, max_bytes=4096).get(f"https://{HOST}/big"))
    assert error.reason is FetchReason.TOO_LARGE
    assert "larger than 4096" in error.detail


def test_the_per_call_size_cap_overrides_the_default(ca: TestCA, web: HttpsServer) -> None:
    web.set_text("/policy", "y" * 200)
    error = fetch_error(client_for(ca, web).get(f"https://{HOST}/policy", max_bytes=100))
    assert error.reason is FetchReason.TOO_LARGE


def test_every_resolved_address_must_be_allowed(ca: TestCA, web: HttpsServer, dns: DnsServer) -> None:
    # One loopback (allowed by the flag) and one private address: refuse the name,
    # whichever order the answer comes in.
    dns.add("mixed.example.org", "A", "127.0.0.1", "10.0.0.1")
    client = SafeHttpClient(Resolver(nameservers=[dns.address], timeout=2.0), allow_loopback=True)
    error = fetch_error(client.get("https://mixed.example.org/"))
    assert error.reason is FetchReason.BLOCKED_ADDRESS
    assert "10.0.0.1" in error.detail


def test_a_name_that_does_not_exist_is_no_address(dns: DnsServer) -> None:
    client = SafeHttpClient(Resolver(nameservers=[dns.address], timeout=2.0))
    error = fetch_error(client.get("https://openpgpkey.nowhere.example/"))
    assert error.reason is FetchReason.NO_ADDRESS


def test_a_failing_lookup_is_dns_failure(dns: DnsServer) -> None:
    dns.servfail("broken.example.org")
    client = SafeHttpClient(Resolver(nameservers=[dns.address], timeout=2.0))
    error = fetch_error(client.get("https://broken.example.org/"))
    assert error.reason is FetchReason.DNS_FAILURE


def test_names_resolved_through_dns_are_fetched_by_name(ca: TestCA, web: HttpsServer, dns: DnsServer) -> None:
    dns.add(HOST, "A", "127.0.0.1")
    web.set_text("/x", "ok")
    client = SafeHttpClient(
        Resolver(nameservers=[dns.address], timeout=2.0), allow_loopback=True, ca_file=ca.ca_file
    )
    response = asyncio.run(client.get(f"https://{HOST}:{web.port}/x"))
    assert response.body == b"ok"
    assert web.requests == [("/x", f"{HOST}:{web.port}")]


def test_a_refused_connection_is_connection_failed(ca: TestCA) -> None:
    client = SafeHttpClient(
        None, allow_loopback=True, ca_file=ca.ca_file, host_overrides={HOST: ("127.0.0.1", unused_port())}
    )
    error = fetch_error(client.get(f"https://{HOST}/"))
    assert error.reason is FetchReason.CONNECTION_FAILED


# -- plain-HTTP servers written by hand, for what the HTTPS test server cannot do ------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


async def _with_server(handler: Handler, scenario: Callable[[int], Awaitable[Any]]) -> Any:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass  # the client hung up on purpose (size cap, timeout)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await scenario(port)
    finally:
        server.close()
        await server.wait_closed()


def _http_client(port: int, **kwargs: Any) -> SafeHttpClient:
    return SafeHttpClient(
        None,
        allow_loopback=True,
        allow_http=True,
        host_overrides={"hooks.example.org": ("127.0.0.1", port)},
        **kwargs,
    )


def test_an_undeclared_oversize_body_is_cut_off_while_streaming() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        # No Content-Length: the body runs until the connection closes.
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(64):
            writer.write(b"z" * 1024)
            await writer.drain()

    async def scenario(port: int) -> FetchError:
        with pytest.raises(FetchError) as info:
            await _http_client(port, max_bytes=8192).get("http://hooks.example.org/stream")
        return info.value

    error = asyncio.run(_with_server(handler, scenario))
    assert error.reason is FetchReason.TOO_LARGE


def test_a_slow_server_hits_the_total_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        # One byte of the promised hundred, then nothing until the client gives up: only
        # the total timeout can end this request.
        writer.write(b"a")
        await writer.drain()
        await reader.read()  # returns when the client closes the connection

    async def scenario(port: int) -> FetchError:
        with pytest.raises(FetchError) as info:
            await _http_client(port, timeout=0.5).get("http://hooks.example.org/slow")
        return info.value

    error = asyncio.run(_with_server(handler, scenario))
    assert error.reason is FetchReason.TIMEOUT


def test_post_sends_the_body_and_returns_the_answer() -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-Id: 1\r\nX-Id: 2\r\n\r\nok")
        await writer.drain()

    async def scenario(port: int) -> Any:
        return await _http_client(port).post(
            "http://hooks.example.org/hook?sig=abc",
            b'{"event":"delivered"}',
            {"Content-Type": "application/json"},
        )

    response = asyncio.run(_with_server(handler, scenario))
    assert (response.status, response.body) == (202, b"ok")
    assert response.headers["x-id"] == "1, 2"
    request = received[0]
    assert request.startswith(b"POST /hook?sig=abc HTTP/1.1\r\n")
    assert b"\r\nHost: hooks.example.org\r\n" in request
    assert b"\r\nContent-Length: 21\r\n" in request
    assert b"\r\nAccept-Encoding: identity\r\n" in request
    assert request.endswith(b'\r\n\r\n{"event":"delivered"}')


def test_plain_http_needs_the_flag() -> None:
    client = SafeHttpClient(None, allow_loopback=True, host_overrides={"hooks.example.org": ("127.0.0.1", 9)})
    error = fetch_error(client.get("http://hooks.example.org/"))
    assert error.reason is FetchReason.BAD_URL
