"""A throwaway certificate authority for loopback TLS (wraps ``trustme``).

Issue good, expired and wrong-name server certificates, build server ``SSLContext``s,
and write the CA certificate to a file for code that takes a CA-bundle path.
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trustme
from cryptography import x509


@dataclass(frozen=True)
class IssuedCert:
    """A server certificate and its key."""

    leaf: trustme.LeafCert

    @property
    def cert_pem(self) -> bytes:
        return self.leaf.cert_chain_pems[0].bytes()

    @property
    def key_pem(self) -> bytes:
        return self.leaf.private_key_pem.bytes()

    @property
    def der(self) -> bytes:
        """The leaf certificate in DER (what TLSA records hash)."""
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(Encoding.DER)

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting this certificate (no client certs asked)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)
        return context


class TestCA:
    """A CA whose certificate tests can trust (``ca_file``) or deliberately not trust."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self._dir = tempfile.TemporaryDirectory(prefix="sealmail-ca-")
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    @property
    def ca_der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        return cert.public_bytes(Encoding.DER)

    def issue(
        self,
        *hostnames: str,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> IssuedCert:
        """A certificate for ``hostnames`` (DNS names or IP addresses)."""
        return IssuedCert(self.ca.issue_cert(*hostnames, not_before=not_before, not_after=not_after))

    def issue_expired(self, *hostnames: str) -> IssuedCert:
        """A certificate for ``hostnames`` that expired yesterday."""
        now = datetime.datetime.now(datetime.UTC)
        return self.issue(
            *hostnames,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )

    def issue_wrong_name(self) -> IssuedCert:
        """A valid certificate for a name no test host uses."""
        return self.issue("wrong-name.invalid")

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def write_bundle(self, path: str | os.PathLike[str]) -> None:
        self.ca.cert_pem.write_to_path(str(path))

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> TestCA:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
