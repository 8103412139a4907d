"""The one SSRF-safe outbound HTTP client: WKD, keyservers, MTA-STS and webhooks use it.

A fetch whose URL comes from the outside world (a recipient's domain, a tenant's
webhook) must not become a way to reach the inside: the metadata service at
169.254.169.254, the database on 10.0.0.5, an admin port on 127.0.0.1.  So the client

1. parses the URL itself and accepts only ``https`` (``http`` behind a flag), no
   userinfo and no numeric-looking host names that resolvers parse in odd ways;
2. resolves the host itself and refuses the request when **any** address it gets is
   not public (:func:`classify_address`), loopback excepted only under
   ``allow_loopback`` for tests;
3. connects only to those vetted addresses.  The pinning lives in an httpcore network
   backend (:class:`_PinnedBackend`) that stands in for name resolution: the URL keeps
   its host name, so the Host header, SNI and the certificate name check all use the
   name, while the TCP socket can only go to an address we checked.  Nothing resolves
   the name a second time, so a DNS answer that changes between check and connect
   (DNS rebinding) has nothing to change;
4. never follows redirects (RFC 8461 §3.3 forbids it for MTA-STS; for the others a 3xx
   comes back as a response and the caller decides), reads no proxy settings from the
   environment, asks for ``identity`` encoding and caps the body while streaming,
   under one deadline for the whole fetch.

Failures raise :class:`FetchError` with a stable :class:`FetchReason`.  URLs may carry
addresses in the query (WKD's ``?l=local-part``), so error details name the URL through
:func:`redact_url`, which drops the query.

Size: one file on purpose: every check between a URL and a socket is read, and reviewed, in one
place.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpcore

from sealmail import __version__
from sealmail.domain.numerals import exceeds

# Re-exported: callers import the address policy from here too.
from sealmail.net.address_policy import AddressClass as AddressClass
from sealmail.net.address_policy import IPAddress as IPAddress
from sealmail.net.address_policy import address_allowed as address_allowed
from sealmail.net.address_policy import classify_address as classify_address
from sealmail.net.dns import DnsLookupError, Resolver, is_host_name, to_ascii_domain

DEFAULT_USER_AGENT = f"Sealmail/{__version__}"
DEFAULT_MAX_BYTES = 1_048_576


class FetchReason(enum.StrEnum):
    """Stable tokens for why a fetch failed (metrics, cache entries and callers key on them)."""

    BAD_URL = "bad_url"
    BLOCKED_ADDRESS = "blocked_address"
    NO_ADDRESS = "no_address"  # the name does not exist or has no A/AAAA (a fact, not a glitch)
    DNS_FAILURE = "dns_failure"  # the lookup itself failed (timeout, SERVFAIL): try later
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"
    TOO_LARGE = "too_large"
    CONNECTION_FAILED = "connection_failed"


class FetchError(Exception):
    """An outbound fetch failed; ``reason`` is stable, ``detail`` is for operators.

    ``detail`` never contains a URL's query string.
    """

    def __init__(self, reason: FetchReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SafeResponse:
    """A complete response.  ``url`` is the URL as requested, query included: do not log it.

    ``headers`` has lowercase names; repeated fields are joined with ", " (RFC 9110 §5.3).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lowercase ("" when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status < 400

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` for anything unreadable, however it fails.

        A body of a few thousand ``[`` makes ``json.loads`` raise ``RecursionError``, which a
        caller catching ``ValueError`` (as for any other bad JSON) would let escape.
        """
        try:
            return json.loads(self.body)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


def redact_url(url: str) -> str:
    """``url`` without userinfo, query and fragment, safe for logs and error details."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unparsable url>"
    suffix = "?…" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{suffix}"


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str  # A-label form, or a compressed IP literal without brackets
    port: int
    target: str  # path and query, as sent on the request line
    url: str
    redacted: str
    ip_literal: bool

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_url(url: str, *, allow_http: bool) -> _Target:
    # Whitespace and control characters are where parser differentials hide
    # (urlsplit silently strips some of them since bpo-43882).
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise FetchError(FetchReason.BAD_URL, "the URL contains whitespace or control characters")
    redacted = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(FetchReason.BAD_URL, f"unparsable URL {redacted}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not allow_http):
        raise FetchError(FetchReason.BAD_URL, f"scheme {scheme!r} is not allowed (https only)")
    if "@" in parts.netloc:
        # Userinfo is a classic trick to make a URL look like it goes somewhere else.
        raise FetchError(FetchReason.BAD_URL, "URLs with userinfo are not fetched")
    raw_host = parts.hostname
    if not raw_host:
        raise FetchError(FetchReason.BAD_URL, f"no host in {redacted}")
    ip_literal = _is_ip(raw_host)
    if ip_literal:
        host = str(ipaddress.ip_address(raw_host))
    else:
        try:
            host = to_ascii_domain(raw_host)
        except ValueError as exc:
            raise FetchError(FetchReason.BAD_URL, f"invalid host in {redacted}") from exc
        # "127.1", "2130706433", "0x7f.1" or "127.0.0.0x1" are IPv4 to inet_aton but names
        # to us (is_host_name refuses a numeric last label); refuse rather than guess.
        if not is_host_name(host) or host.startswith("0x"):
            raise FetchError(FetchReason.BAD_URL, f"invalid host name in {redacted}")
    path = parts.path or "/"
    if not (path.isascii() and parts.query.isascii()):
        raise FetchError(FetchReason.BAD_URL, "path and query must be percent-encoded ASCII")
    target = f"{path}?{parts.query}" if parts.query else path
    if port is None:
        port = 443 if scheme == "https" else 80
    elif port == 0:
        raise FetchError(FetchReason.BAD_URL, f"port 0 in {redacted}")
    return _Target(scheme, host, port, target, url, redacted, ip_literal)


def url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why the client would refuse ``url`` before any lookup (its own parser), or None.

    For checks at configuration time (webhook endpoints): a URL accepted there but refused
    here would fail at every send, so the two must be one parser.
    """
    try:
        _parse_url(url, allow_http=allow_http)
    except FetchError as exc:
        return exc.detail
    return None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Name resolution replaced by a fixed list of vetted addresses for exactly one origin.

    httpcore hands us the origin's host name and port; we connect to the vetted
    addresses instead (in order, the next one when one refuses).  Any other origin is
    refused, so nothing inside httpcore can open a connection we did not check.
    """

    def __init__(self, host: str, port: int, addresses: Sequence[str], connect_port: int) -> None:
        self._host, self._port = host, port
        self._addresses = tuple(addresses)
        self._connect_port = connect_port
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's backend signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host.lower() != self._host or port != self._port:
            raise httpcore.ConnectError("refusing a connection to an origin that was not vetted")
        last: Exception | None = None
        for address in self._addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    self._connect_port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last if last is not None else httpcore.ConnectError("no address to connect to")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's backend signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for outbound fetches")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _is_tls_failure(exc: BaseException) -> bool:
    """httpcore wraps ssl errors in ConnectError; look down the cause chain for one."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _allowed_host(host: str) -> str:
    """A host of ``only_hosts`` in the form ``_parse_url`` gives a target's host."""
    return str(ipaddress.ip_address(host)) if _is_ip(host) else to_ascii_domain(host)


def _check_header(name: str, value: str) -> None:
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise ValueError(f"invalid header name {name!r}")
    if any(ch in value for ch in "\r\n\0") or not value.isascii():
        raise ValueError(f"invalid value for header {name}")


# Headers the client owns: Host must match the vetted origin, the body framing must
# match the content, and compressed bodies would defeat the size cap.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)


class SafeHttpClient:
    """Outbound HTTP(S) that only reaches public addresses.

    ``resolver`` looks up A/AAAA records (``None``: the system's getaddrinfo).
    ``host_overrides`` maps a host name to ``(ip, port)`` in place of DNS, so tests can
    serve ``openpgpkey.example.org`` from loopback; the address is still vetted and the
    certificate is still checked against the name.  ``only_hosts``, when given, is the
    explicit allow-list of host names this client may reach at all: a client built for one
    configured service (the OSV advisory database) cannot be steered anywhere else, even by
    a URL assembled from a hostile response.  ``ca_file`` replaces the system
    trust store.  The client holds no connections: each request gets a fresh pool
    pinned to its vetted addresses, so there is nothing to close.
    """

    def __init__(
        self,
        resolver: Resolver | None,
        *,
        allow_loopback: bool = False,
        allow_http: bool = False,
        timeout: float = 15.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ca_file: str | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        host_overrides: Mapping[str, tuple[str, int]] | None = None,
        only_hosts: Iterable[str] | None = None,
    ) -> None:
        if timeout <= 0 or max_bytes <= 0:
            raise ValueError("timeout and max_bytes must be positive")
        self._resolver = resolver
        self._allow_loopback = allow_loopback
        self._allow_http = allow_http
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._user_agent = user_agent
        self._overrides = {to_ascii_domain(k): v for k, v in (host_overrides or {}).items()}
        self._ca_file = ca_file
        self._context: ssl.SSLContext | None = None
        self._only_hosts = None if only_hosts is None else frozenset(_allowed_host(h) for h in only_hosts)

    @property
    def _ssl_context(self) -> ssl.SSLContext:
        # Built on first use: loading the system trust store takes a noticeable
        # fraction of a second, and many clients never make a request.
        if self._context is None:
            # Verified certificates and names always; TLS 1.2 is the floor RFC 8996
            # and RFC 9325 §3.1.1 leave standing.
            context = ssl.create_default_context(cafile=self._ca_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._context = context
        return self._context

    async def get(self, url: str, *, accept: str | None = None, max_bytes: int | None = None) -> SafeResponse:
        """GET ``url``; any status comes back as a response (3xx included, never followed)."""
        headers = {"Accept": accept} if accept else {}
        return await self._request("GET", url, headers, None, max_bytes)

    async def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> SafeResponse:
        """POST ``content``; ``headers`` may not set Host, framing or encoding headers."""
        return await self._request("POST", url, dict(headers or {}), content, max_bytes)

    async def _request(
        self,
        method: str,
        url: str,
        extra_headers: Mapping[str, str],
        content: bytes | None,
        max_bytes: int | None,
    ) -> SafeResponse:
        for name, value in extra_headers.items():
            _check_header(name, value)
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"the {name} header is set by SafeHttpClient")
        target = _parse_url(url, allow_http=self._allow_http)
        if self._only_hosts is not None and target.host not in self._only_hosts:
            raise FetchError(FetchReason.BAD_URL, f"{target.host} is not a host this client may reach")
        limit = self._max_bytes if max_bytes is None else max_bytes
        try:
            # One deadline for resolution, connection, TLS and the whole body: a
            # slow-drip server must not hold a worker for longer than this.
            async with asyncio.timeout(self._timeout):
                addresses, connect_port = await self._vetted_addresses(target)
                return await self._exchange(
                    method, target, addresses, connect_port, extra_headers, content, limit
                )
        except TimeoutError as exc:
            raise FetchError(
                FetchReason.TIMEOUT, f"no complete answer from {target.redacted} in {self._timeout:g}s"
            ) from exc

    async def _vetted_addresses(self, target: _Target) -> tuple[list[str], int]:
        override = self._overrides.get(target.host)
        if override is not None:
            addresses, connect_port = [override[0]], override[1]
        elif target.ip_literal:
            addresses, connect_port = [target.host], target.port
        else:
            addresses, connect_port = await self._resolve(target.host), target.port
        if not addresses:
            raise FetchError(FetchReason.NO_ADDRESS, f"{target.host} has no address records")
        for address in addresses:
            try:
                cls = classify_address(address)
            except ValueError as exc:
                raise FetchError(FetchReason.BLOCKED_ADDRESS, f"{target.host}: unusable address") from exc
            if not address_allowed(address, allow_loopback=self._allow_loopback):
                # Any bad address blocks the whole name: connecting to "the good one"
                # would let a rebinding attacker win whenever the order flips.
                raise FetchError(
                    FetchReason.BLOCKED_ADDRESS, f"{target.host} resolves to {address} ({cls.value})"
                )
        return addresses, connect_port

    async def _resolve(self, host: str) -> list[str]:
        if self._resolver is not None:
            try:
                return await self._resolver.resolve_addresses(host)
            except DnsLookupError as exc:
                raise FetchError(FetchReason.DNS_FAILURE, f"address lookup for {host} failed") from exc
            except ValueError as exc:
                raise FetchError(FetchReason.BAD_URL, f"invalid host name {host}") from exc
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            # EAI_NONAME/EAI_NODATA: the name has no addresses; anything else is a
            # lookup failure worth retrying.
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                return []
            raise FetchError(FetchReason.DNS_FAILURE, f"address lookup for {host} failed") from exc
        addresses: list[str] = []
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6) and str(sockaddr[0]) not in addresses:
                addresses.append(str(sockaddr[0]))
        return addresses

    async def _exchange(
        self,
        method: str,
        target: _Target,
        addresses: list[str],
        connect_port: int,
        extra_headers: Mapping[str, str],
        content: bytes | None,
        limit: int,
    ) -> SafeResponse:
        headers: list[tuple[str, str]] = [
            ("Host", target.host_header),
            ("User-Agent", self._user_agent),
            # No compression: the size cap must measure what we keep, not a zip bomb.
            ("Accept-Encoding", "identity"),
            ("Connection", "close"),
            *extra_headers.items(),
        ]
        if content is not None:
            headers.append(("Content-Length", str(len(content))))
        backend = _PinnedBackend(target.host, target.port, addresses, connect_port)
        per_phase = {
            "connect": self._timeout,
            "read": self._timeout,
            "write": self._timeout,
            "pool": self._timeout,
        }
        try:
            async with (
                httpcore.AsyncConnectionPool(
                    ssl_context=self._ssl_context,
                    network_backend=backend,
                    http1=True,
                    http2=False,
                    retries=0,
                    max_connections=1,
                ) as pool,
                pool.stream(
                    method,
                    httpcore.URL(
                        scheme=target.scheme.encode(),
                        host=target.host.encode(),
                        port=target.port,
                        target=target.target.encode(),
                    ),
                    headers=headers,
                    content=content,
                    extensions={"timeout": per_phase},
                ) as response,
            ):
                response_headers = _header_map(response.headers)
                declared = response_headers.get("content-length", "")
                if exceeds(declared, limit):
                    raise FetchError(
                        FetchReason.TOO_LARGE,
                        f"response larger than {limit} bytes (Content-Length {declared}) "
                        f"from {target.redacted}",
                    )
                body = bytearray()
                async for chunk in response.aiter_stream():
                    body.extend(chunk)
                    if len(body) > limit:
                        raise FetchError(
                            FetchReason.TOO_LARGE,
                            f"response larger than {limit} bytes from {target.redacted}",
                        )
                return SafeResponse(response.status, response_headers, bytes(body), target.url)
        except httpcore.TimeoutException as exc:
            raise FetchError(FetchReason.TIMEOUT, f"{target.redacted}: {type(exc).__name__}") from exc
        except httpcore.ConnectError as exc:
            if _is_tls_failure(exc):
                raise FetchError(
                    FetchReason.TLS_ERROR, f"TLS with {target.host} failed: {_tls_reason(exc)}"
                ) from exc
            raise FetchError(FetchReason.CONNECTION_FAILED, f"cannot connect to {target.host}") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise FetchError(
                FetchReason.CONNECTION_FAILED, f"{target.redacted}: {type(exc).__name__}"
            ) from exc


def _tls_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ssl.SSLError):
        seen = seen.__cause__ or seen.__context__
    if isinstance(seen, ssl.SSLCertVerificationError):
        return str(seen.verify_message or seen.reason or "certificate verify failed")
    if isinstance(seen, ssl.SSLError):
        return str(seen.reason or type(seen).__name__)
    return "handshake failed"


def _header_map(raw: Sequence[tuple[bytes, bytes]]) -> Mapping[str, str]:
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        value = value_bytes.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return MappingProxyType(headers)
