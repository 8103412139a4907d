"""A real DNS server on loopback (UDP and TCP on one port) answering from a mutable zone.

Tests add records at runtime::

    with DnsServer() as dns:
        dns.add("example.org", "MX", "10 mx1.example.org.")
        dns.add("mx1.example.org", "A", "127.0.0.2")
        dns.mark_secure("example.org")     # answers carry the AD bit
        resolver = Resolver(nameservers=[dns.address])

Unknown names get NXDOMAIN, names in ``servfail`` get SERVFAIL, and the queries ``drop``
asks for go unanswered (a lost datagram, or one an overloaded server discarded).  The AD bit is only
set when the query asked for it (AD or DO), as a validating resolver does (RFC 6840
§5.7), so a client that forgets to ask sees unauthenticated answers.
"""

from __future__ import annotations

import selectors
import socket
import socketserver
import struct
import threading
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _norm(name: str) -> str:
    return name.lower().rstrip(".") + "."


class DnsServer:
    """Authoritative-style loopback DNS server backed by an in-memory zone dict."""

    def __init__(self, host: str = "127.0.0.1", udp_receive_buffer: int | None = None) -> None:
        self.host = host
        self.port = 0
        # Bytes of queued queries the kernel keeps before it drops datagrams (SO_RCVBUF); the
        # default (~200 KB) holds a few hundred, and this server answers one at a time.
        self.udp_receive_buffer = udp_receive_buffer
        self._lock = threading.Lock()
        self._zone: dict[tuple[str, str], list[str]] = {}
        self._ttl: dict[tuple[str, str], int] = {}
        self._secure: set[str] = set()
        self._servfail: set[str] = set()
        self._drops: dict[str, int] = {}  # name -> queries still to leave unanswered (-1: all)
        self.queries: list[tuple[str, str]] = []
        self._udp: socket.socket | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- zone -------------------------------------------------------------------------

    def add(self, name: str, rdtype: str, *values: str, ttl: int = 60) -> None:
        """Append records, e.g. ``add("example.org", "MX", "10 mx1.example.org.")``."""
        key = (_norm(name), rdtype.upper())
        with self._lock:
            self._zone.setdefault(key, []).extend(values)
            self._ttl[key] = ttl

    def set(self, name: str, rdtype: str, *values: str, ttl: int = 60) -> None:
        """Replace the records of one type at ``name`` (no values: an empty RRset)."""
        key = (_norm(name), rdtype.upper())
        with self._lock:
            self._zone[key] = list(values)
            self._ttl[key] = ttl

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Drop one RRset, or every record at ``name``."""
        owner = _norm(name)
        with self._lock:
            for key in [k for k in self._zone if k[0] == owner]:
                if rdtype is None or key[1] == rdtype.upper():
                    del self._zone[key]

    def mark_secure(self, *names: str) -> None:
        """Answers for these names carry the AD bit (as if DNSSEC-validated)."""
        with self._lock:
            self._secure.update(_norm(n) for n in names)

    def servfail(self, *names: str) -> None:
        """Queries for these names get SERVFAIL."""
        with self._lock:
            self._servfail.update(_norm(n) for n in names)

    def drop(self, *names: str, count: int = -1) -> None:
        """Leave the next ``count`` queries for each name unanswered (``-1``: every one)."""
        with self._lock:
            self._drops.update((_norm(n), count) for n in names)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    # -- answering ----------------------------------------------------------------------

    def answer(self, wire: bytes, max_size: int) -> bytes | None:
        """Build the response to one query message (or None for garbage)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.flags &= ~dns.flags.AD
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        owner = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((owner, rdtype))
            left = self._drops.get(owner, 0)
            if left:
                self._drops[owner] = left - 1 if left > 0 else left
                return None
            if owner in self._servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response.to_wire()
            exists = any(key[0] == owner for key in self._zone)
            values = list(self._zone.get((owner, rdtype), []))
            ttl = self._ttl.get((owner, rdtype), 60)
            secure = owner in self._secure
        wants_ad = bool(query.flags & dns.flags.AD) or bool(query.ednsflags & dns.flags.DO)
        if secure and wants_ad:
            response.flags |= dns.flags.AD
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values:
            rrset = dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN, rdtype, values)
            response.answer.append(rrset)
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            # RFC 1035 §4.2.1: too big for UDP; set TC so the client retries on TCP.
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> DnsServer:
        """Bind UDP on port 0, then TCP on the same port (retrying if that one is taken)."""
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if self.udp_receive_buffer:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.udp_receive_buffer)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            try:
                tcp = _TcpServer((self.host, port), self)
            except OSError:
                udp.close()
                continue
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:
            raise RuntimeError("could not bind UDP and TCP on one loopback port")
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True),
            threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _serve_udp(self) -> None:
        assert self._udp is not None
        udp = self._udp
        with selectors.DefaultSelector() as selector:
            selector.register(udp, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(timeout=0.05):
                    continue
                try:
                    wire, peer = udp.recvfrom(65535)
                except OSError:
                    return
                try:
                    query = dns.message.from_wire(wire)
                    max_size = max(512, query.payload if query.edns >= 0 else 512)
                except dns.exception.DNSException:
                    continue
                reply = self.answer(wire, max_size)
                if reply is not None:
                    udp.sendto(reply, peer)

    def stop(self) -> None:
        self._stop.set()
        if self._tcp is not None:
            self._tcp.shutdown()
            self._tcp.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._udp is not None:
            self._udp.close()
        self._udp, self._tcp, self._threads = None, None, []

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        # RFC 1035 §4.2.2: each TCP message is preceded by a two-byte length.
        conn: socket.socket = self.request
        conn.settimeout(5)
        try:
            while True:
                header = _recv_exact(conn, 2)
                if header is None:
                    return
                wire = _recv_exact(conn, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                reply = self.server.dns.answer(wire, 65535)
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], dns_server: DnsServer) -> None:
        self.dns = dns_server
        super().__init__(address, _TcpHandler)


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data.extend(chunk)
    return bytes(data)
