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


@dataclass(frozen=True)
class ChainCert:
    """A server chain presented exactly as given (PEM, leaf first) with the leaf's key."""

    chain_pem: bytes
    key_pem: bytes

    @property
    def der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_pem_x509_certificate(self.chain_pem).public_bytes(Encoding.DER)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory(prefix="sealmail-chain-") as tmp:
            chain, key = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
            chain.write_bytes(self.chain_pem)
            key.write_bytes(self.key_pem)
            context.load_cert_chain(chain, key)
        return context


def forge_with(signer: trustme.LeafCert, name: str) -> ChainCert:
    """A certificate for ``name`` signed with ``signer``'s key (a leaf, no CA), naming it as
    the issuer; the chain presented is the forgery, ``signer`` and ``signer``'s own chain."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    issuer = x509.load_pem_x509_certificate(signer.cert_chain_pems[0].bytes())
    issuer_key = serialization.load_pem_private_key(signer.private_key_pem.bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]  # an EC or RSA key, as trustme makes
    )
    chain = forged.public_bytes(serialization.Encoding.PEM) + b"".join(
        p.bytes() for p in signer.cert_chain_pems
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ChainCert(chain, key_pem)


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
