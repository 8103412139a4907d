"""A real RFC 3161 time-stamp authority on loopback: ``openssl ts -reply`` behind a tiny
HTTP handler, with its own CA and a TSA certificate (extendedKeyUsage timeStamping,
critical, as RFC 3161 §2.3 demands).

    with TimestampAuthority(tmp_path) as tsa:
        settings = make_settings(..., evidence_tsa_url=tsa.url)
        ... openssl ts -verify ... -CAfile tsa.ca_file
"""

from __future__ import annotations

import datetime
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class TimestampAuthority:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.dir / "tsa-ca.pem"
        self.requests = 0
        self.refuse = False  # answer HTTP 500, as a TSA that is down
        self._write_keys()
        (self.dir / "ts.cnf").write_text(CONFIG.format(dir=self.dir))
        (self.dir / "serial").write_text("01\n")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/tsa"

    def _write_keys(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("Test TSA CA"))
            .issuer_name(_name("Test TSA CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name("Test TSA"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file.write_bytes(_pem(ca))
        (self.dir / "tsa.pem").write_bytes(_pem(leaf))
        (self.dir / "tsa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def _reply(self, query: bytes) -> bytes:
        done = subprocess.run(
            [
                "openssl", "ts", "-reply", "-config", str(self.dir / "ts.cnf"),
                "-queryfile", "/dev/stdin", "-out", "/dev/stdout",
                "-chain", str(self.ca_file),
            ],
            input=query,
            capture_output=True,
            timeout=30,
            check=True,
        )  # fmt: skip
        return done.stdout

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                query = self.rfile.read(min(length, 64 * 1024))
                tsa.requests += 1
                if tsa.refuse or self.headers.get("Content-Type") != "application/timestamp-query":
                    self.send_response(500)
                    self.end_headers()
                    return
                body = tsa._reply(query)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> TimestampAuthority:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
